# package.cmake - the Debian package (cpack -G DEB, or the `package` target):
# segspool_VERSION_ARCH.deb with both binaries, the unit and the submit timer, the
# default /etc/segspool/segspool.json (a conffile), sysusers.d and tmpfiles.d entries,
# the man pages of man/ when they are there, and maintainer scripts (packaging/post*,
# prerm). Its files name /usr/bin and /etc, so the system files are installed only
# with -DCMAKE_INSTALL_PREFIX=/usr (tools/package_check.sh builds it so).
set(SEGSPOOL_PKG ${CMAKE_CURRENT_SOURCE_DIR}/packaging)
set(SEGSPOOL_DOCDIR ${CMAKE_INSTALL_DATAROOTDIR}/doc/segspool)

# the man pages, gzip -9n as Debian wants them, for `cmake --install` and the package alike
# (installed plain as well, lintian would see each twice); a missing one stops the build
foreach(page segspool.1 segspool-emu.1 segspool.json.5)
  if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/man/${page})
    message(FATAL_ERROR "man/${page} is missing")
  else()
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
    add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/man
      COMMAND sh -c "gzip -9n -c '${CMAKE_CURRENT_SOURCE_DIR}/man/${page}' > '${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz'"
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/man/${page} VERBATIM)
    list(APPEND SEGSPOOL_MAN_GZ ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz)
    install(FILES ${CMAKE_CURRENT_BINARY_DIR}/man/${page}.gz
            DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endif()
endforeach()

set(CPACK_DEBIAN_PACKAGE_MAINTAINER
    "segspool maintainers <maintainers@users.noreply.r-seed-cc9c3338.example>")
string(TIMESTAMP SEGSPOOL_CHANGELOG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${SEGSPOOL_PKG}/changelog.in ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog @ONLY)
add_custom_command(OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.gz
  COMMAND sh -c "gzip -9n -c '${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog' > '${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.gz'"
  DEPENDS ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog VERBATIM)
add_custom_target(segspool_pkg_files ALL
  DEPENDS ${SEGSPOOL_MAN_GZ} ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.gz)

if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  install(FILES ${SEGSPOOL_PKG}/segspool.service ${SEGSPOOL_PKG}/segspool-submit@.service
          ${SEGSPOOL_PKG}/segspool-submit@.timer DESTINATION lib/systemd/system)
  install(FILES ${SEGSPOOL_PKG}/sysusers.conf DESTINATION lib/sysusers.d RENAME segspool.conf)
  install(FILES ${SEGSPOOL_PKG}/tmpfiles.conf DESTINATION lib/tmpfiles.d RENAME segspool.conf)
  install(FILES ${SEGSPOOL_PKG}/segspool.json DESTINATION /etc/segspool)
  install(FILES ${SEGSPOOL_PKG}/copyright ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.gz
          DESTINATION ${SEGSPOOL_DOCDIR})
else()
  message(STATUS "packaging: the unit, sysusers.d, tmpfiles.d and /etc files are installed "
                 "only with -DCMAKE_INSTALL_PREFIX=/usr (the package's layout)")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME segspool)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "batch job engine for the Segment Public API")
# the extended description (the summary above is its first line); lines under 80
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "JSON job files dropped into a spool directory are picked up by a
daemon, recorded in SQLite and run against the Segment Public API with rate
limits, retries, pagination and fan-out; every attempt, page and result is
kept.

The package runs the daemon as a hardened systemd service (segspool.service) on
/var/spool/segspool, with the API token passed as a systemd credential, and has
a timer template (segspool-submit@.timer) for nightly batches. segspool-emu, an
emulator of the API, rehearses a batch offline.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# the user is made by systemd-sysusers, else by adduser
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${SEGSPOOL_PKG}/conffiles ${SEGSPOOL_PKG}/postinst
    ${SEGSPOOL_PKG}/prerm ${SEGSPOOL_PKG}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_SEGSPOOL_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PROJECT_CONFIG_FILE ${SEGSPOOL_PKG}/cpack_check.cmake)
include(CPack)
