/* store_vfs.c - part of the store: a thin SQLite VFS over the default one that gathers
 * the write-ahead log's writes and hands them to the kernel in one pwrite at the sync
 * that ends a commit.
 *
 * Why: SQLite writes each WAL frame as two pwrite calls (its 24-byte header, then the
 * page), some 70 system calls for a commit of a few jobs; the daemon commits hundreds of
 * times a second. Gathered, a commit costs one pwrite and its fdatasync.
 *
 * Why it is safe: only the WAL file of a connection opened on this VFS is buffered, and
 * only between syncs. The writer runs with synchronous=FULL, so SQLite syncs the WAL
 * after a commit's frames and before it publishes them in the wal-index, and syncs the
 * header it writes when the log restarts: every byte a reader may look at has been
 * flushed by then. Bytes still in the buffer belong to a transaction that has not
 * committed; losing them in a crash is losing an uncommitted transaction, which SQLite
 * already recovers from. Any read, size, truncate, file control or close of the file
 * flushes first, so SQLite never sees the buffer.
 */
#include "store_vfs.h"

#include <stdlib.h>
#include <string.h>

/* the buffer a WAL file gathers writes in: a commit of 8 jobs (about 27 frames of 2 KiB)
 * fits in one flush, and the daemon's peak RSS has room for it */
#define WAL_BUFFER_BYTES (64 * 1024)

struct wal_file {
	sqlite3_file base;  /* pMethods: wal_methods */
	sqlite3_file *real; /* the default VFS's file, in the same allocation */
	unsigned char *buf; /* gathered bytes for [start, start + len); NULL until needed */
	size_t len;
	sqlite3_int64 start;
};

static sqlite3_vfs *base_vfs;

/* the real file lives after our struct, aligned for anything it holds */
#define REAL_OFFSET ((sizeof(struct wal_file) + 15) & ~(size_t)15)

/* wal_flush - the gathered bytes to the file, in one write. */
static int wal_flush(struct wal_file *f)
{
	if (!f->len)
		return SQLITE_OK;
	int rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->start);
	f->len = 0;
	return rc;
}

/* wal_write - gathers an append to, or an overwrite inside, the buffered range; anything
 * else flushes what is gathered and starts again. */
static int wal_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)file;
	size_t n = (size_t)amt;
	if (!f->buf) {
		f->buf = malloc(WAL_BUFFER_BYTES);
		if (!f->buf)
			return f->real->pMethods->xWrite(f->real, data, amt, off);
	}
	int inside = f->len && off >= f->start && off <= f->start + (sqlite3_int64)f->len &&
	             (size_t)(off - f->start) + n <= WAL_BUFFER_BYTES;
	if (!inside) {
		int rc = wal_flush(f);
		if (rc != SQLITE_OK)
			return rc;
		if (n > WAL_BUFFER_BYTES)
			return f->real->pMethods->xWrite(f->real, data, amt, off);
		f->start = off;
	}
	size_t at = (size_t)(off - f->start);
	memcpy(f->buf + at, data, n);
	if (at + n > f->len)
		f->len = at + n;
	return SQLITE_OK;
}

/* wal_close - flushes, closes the real file, frees the buffer. */
static int wal_close(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = wal_flush(f);
	int rc2 = f->real->pMethods->xClose(f->real);
	free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

/* The rest flush first (a read or size must see every write) and pass the call on. */

static int wal_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, data, amt, off);
}

static int wal_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wal_sync(sqlite3_file *file, int flags)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wal_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wal_file_control(sqlite3_file *file, int op, void *arg)
{
	struct wal_file *f = (struct wal_file *)file;
	int rc = wal_flush(f);
	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wal_lock(sqlite3_file *file, int lock)
{
	struct wal_file *f = (struct wal_file *)file;
	return f->real->pMethods->xLock(f->real, lock);
}

static int wal_unlock(sqlite3_file *file, int lock)
{
	struct wal_file *f = (struct wal_file *)file;
	return f->real->pMethods->xUnlock(f->real, lock);
}

static int wal_check_reserved(sqlite3_file *file, int *out)
{
	struct wal_file *f = (struct wal_file *)file;
	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wal_sector_size(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	return f->real->pMethods->xSectorSize(f->real);
}

static int wal_device_characteristics(sqlite3_file *file)
{
	struct wal_file *f = (struct wal_file *)file;
	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* version 1 methods only: a WAL file has no shared memory or memory map of its own */
static const sqlite3_io_methods wal_methods = {
    1,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* vfs_open - a WAL file is wrapped; any other file is the default VFS's own, opened in
 * place (our szOsFile leaves it room), with its own methods. */
static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                    int *out_flags)
{
	(void)vfs;
	if (!(flags & SQLITE_OPEN_WAL))
		return base_vfs->xOpen(base_vfs, name, file, flags, out_flags);
	struct wal_file *f = (struct wal_file *)file;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(void *)((char *)file + REAL_OFFSET);
	int rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
	/* SQLite calls xClose when pMethods is set, even after a failed open */
	f->base.pMethods = rc == SQLITE_OK && f->real->pMethods ? &wal_methods : NULL;
	if (rc != SQLITE_OK && f->real->pMethods)
		f->real->pMethods->xClose(f->real);
	return rc;
}

/* The VFS methods other than xOpen are the default VFS's. */

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return base_vfs->xDelete(base_vfs, name, sync_dir);
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return base_vfs->xAccess(base_vfs, name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return base_vfs->xFullPathname(base_vfs, name, n, out);
}

static void *vfs_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return base_vfs->xDlOpen(base_vfs, name);
}

static void vfs_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	base_vfs->xDlError(base_vfs, n, msg);
}

static void (*vfs_dl_sym(sqlite3_vfs *vfs, void *handle, const char *sym))(void)
{
	(void)vfs;
	return base_vfs->xDlSym(base_vfs, handle, sym);
}

static void vfs_dl_close(sqlite3_vfs *vfs, void *handle)
{
	(void)vfs;
	base_vfs->xDlClose(base_vfs, handle);
}

static int vfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return base_vfs->xRandomness(base_vfs, n, out);
}

static int vfs_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return base_vfs->xSleep(base_vfs, us);
}

static int vfs_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return base_vfs->xCurrentTime(base_vfs, out);
}

static int vfs_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return base_vfs->xGetLastError(base_vfs, n, out);
}

static int vfs_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

static sqlite3_vfs wal_vfs = {
    2,    /* iVersion: up to xCurrentTimeInt64 */
    0,    /* szOsFile: set at registration */
    0,    /* mxPathname: likewise */
    NULL, /* pNext */
    STORE_VFS_NAME,
    NULL, /* pAppData */
    vfs_open,
    vfs_delete,
    vfs_access,
    vfs_full_pathname,
    vfs_dl_open,
    vfs_dl_error,
    vfs_dl_sym,
    vfs_dl_close,
    vfs_randomness,
    vfs_sleep,
    vfs_current_time,
    vfs_last_error,
    vfs_current_time_int64,
    NULL,
    NULL,
    NULL,
};

/* store_vfs_register - see store_vfs.h. */
int store_vfs_register(void)
{
	if (base_vfs)
		return SQLITE_OK;
	sqlite3_vfs *def = sqlite3_vfs_find(NULL);
	if (!def || def->iVersion < 2)
		return SQLITE_ERROR;
	int room = (int)REAL_OFFSET + def->szOsFile;
	wal_vfs.szOsFile = room > def->szOsFile ? room : def->szOsFile;
	wal_vfs.mxPathname = def->mxPathname;
	base_vfs = def;
	int rc = sqlite3_vfs_register(&wal_vfs, 0);
	if (rc != SQLITE_OK)
		base_vfs = NULL;
	return rc;
}
