/* store_vfs.h - private to the store: the VFS the writer opens its database with (see
 * store_vfs.c: the WAL's writes gathered into one write per commit). */
#ifndef SEGSPOOL_STORE_VFS_H
#define SEGSPOOL_STORE_VFS_H

#include <sqlite3.h>

#define STORE_VFS_NAME "segspool-wal"

/* store_vfs_register - registers STORE_VFS_NAME over the default VFS (not as the
 * default); once per process, later calls do nothing. SQLITE_OK or an SQLite error. */
int store_vfs_register(void);

#endif
