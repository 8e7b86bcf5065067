# cpack_check.cmake - read by cpack: the package's unit and scripts name /usr/bin and
# /etc, so a build configured for another prefix makes no package.
if(NOT CPACK_SEGSPOOL_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "segspool: configure with -DCMAKE_INSTALL_PREFIX=/usr to build the "
                      "package (this build has ${CPACK_SEGSPOOL_INSTALL_PREFIX})")
endif()
