/* replay_main - runs fuzz_job's entry point over the files and directories named on the
 * command line, so ctest replays the corpus with any compiler and without libFuzzer. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* replay_file - one input; -1 when it cannot be read. */
static int replay_file(int dirfd, const char *name)
{
	struct strbuf body = STRBUF_INIT, why = STRBUF_INIT;
	int rc = 0;

	if (read_file_at(dirfd, name, 64u << 20, &body, &why)) {
		fprintf(stderr, "cannot read %s: %s\n", name, why.buf);
		rc = -1;
	} else {
		LLVMFuzzerTestOneInput((const uint8_t *)body.buf, body.len);
	}
	sb_release(&body);
	sb_release(&why);
	return rc;
}

/* replay_path - a file, or every regular file directly inside a directory. */
static int replay_path(const char *path, int *count)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int rc = 0;

	if (!d) {
		if (replay_file(AT_FDCWD, path))
			return -1;
		(*count)++;
		return 0;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (replay_file(dirfd(d), e->d_name))
			rc = -1;
		else
			(*count)++;
	}
	closedir(d);
	return rc;
}

int main(int argc, char **argv)
{
	int count = 0, rc = 0;

	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i], &count))
			rc = 1;
	printf("replayed %d inputs\n", count);
	return rc || count == 0;
}
