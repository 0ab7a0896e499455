#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "share-holder/internal.h"
#include "testutil.h"

/*
 * The audit log's batches: the release lines of a batch reach the file with
 * one write() when the batch is synced, and a batch any of whose lines
 * could not be written fails its sync, so none of its shares may leave.
 * A write failure is made by swapping the log's descriptor for a read-only
 * one of the same file.
 */

struct fixture {
    char dir[64];
    char path[128];
    struct sh_audit *audit; /* 64 KiB of pending lines: on the heap */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char why[256];

    if (f == NULL || (f->audit = calloc(1, sizeof(*f->audit))) == NULL) {
        return -1;
    }
    (void)snprintf(f->dir, sizeof(f->dir), "/tmp/spk-test-sh-audit.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        return -1;
    }
    (void)snprintf(f->path, sizeof(f->path), "%s/audit", f->dir);
    f->audit->fd = -1;
    if (sh_audit_open(f->audit, f->path, 0, why, sizeof(why)) != 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    sh_audit_close(f->audit);
    unlink(f->path);
    rmdir(f->dir);
    free(f->audit);
    free(f);
    return 0;
}

static size_t file_size(const struct fixture *f)
{
    struct stat st;

    assert_int_equal(stat(f->path, &st), 0);
    return (size_t)st.st_size;
}

static size_t count_lines(const struct fixture *f, const char *needle)
{
    size_t len = 0;
    uint8_t *text = testutil_read_file(f->path, &len);
    size_t n = 0;

    for (const char *p = (const char *)text; (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    free(text);
    return n;
}

/* make_writes_fail: the log's descriptor becomes a read-only one; returns
 * the writable one to put back. */
static int make_writes_fail(struct fixture *f)
{
    int good = f->audit->fd;

    f->audit->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    assert_true(f->audit->fd > STDERR_FILENO);
    return good;
}

static void writes_work_again(struct fixture *f, int good)
{
    close(f->audit->fd);
    f->audit->fd = good;
}

static void test_batch_written_at_sync(void **state)
{
    struct fixture *f = *state;
    size_t len = 0;
    uint8_t *text;

    for (int i = 0; i < 3; i++) {
        assert_int_equal(sh_audit_line(f->audit, "client=c outcome=released req=%d", i), 0);
    }
    /* nothing reaches the file line by line */
    assert_int_equal(file_size(f), 0);
    assert_int_equal(sh_audit_sync(f->audit), 0);
    text = testutil_read_file(f->path, &len);
    /* whole lines, in order, each after its time */
    assert_non_null(strstr((const char *)text, "Z client=c outcome=released req=0\n"));
    assert_true(strstr((const char *)text, "req=0\n") < strstr((const char *)text, "req=1\n"));
    assert_true(strstr((const char *)text, "req=1\n") < strstr((const char *)text, "req=2\n"));
    assert_int_equal(count_lines(f, "\n"), 3);
    free(text);
    /* a sync with nothing new is fine and writes nothing */
    assert_int_equal(sh_audit_sync(f->audit), 0);
    assert_int_equal(file_size(f), len);
}

static void test_failed_write_fails_batch(void **state)
{
    struct fixture *f = *state;
    int good;

    good = make_writes_fail(f);
    assert_int_equal(sh_audit_line(f->audit, "client=c outcome=released req=1"), 0);
    assert_int_equal(sh_audit_sync(f->audit), SPK_ERR_IO);
    writes_work_again(f, good);
    /* the next batch is not blamed for it, and the failed one is not
     * written after all */
    assert_int_equal(sh_audit_line(f->audit, "client=c outcome=released req=2"), 0);
    assert_int_equal(sh_audit_sync(f->audit), 0);
    assert_int_equal(count_lines(f, "req=1\n"), 0);
    assert_int_equal(count_lines(f, "req=2\n"), 1);
}

/* A batch too big for the pending buffer is written out in parts; a part
 * that fails fails the whole batch even if the disk works again by the
 * sync, and what was still pending is dropped. */
static void test_failed_part_fails_batch(void **state)
{
    struct fixture *f = *state;
    char pad[201];
    size_t n = 2 * SH_AUDIT_PENDING_MAX / sizeof(pad);
    int good;

    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    good = make_writes_fail(f);
    for (size_t i = 0; i < n / 2; i++) {
        assert_int_equal(sh_audit_line(f->audit, "client=c pad=%s req=%zu", pad, i), 0);
    }
    writes_work_again(f, good);
    for (size_t i = n / 2; i < n; i++) {
        assert_int_equal(sh_audit_line(f->audit, "client=c pad=%s req=%zu", pad, i), 0);
    }
    assert_int_equal(sh_audit_sync(f->audit), SPK_ERR_IO);
    /* The parts written while the disk worked are there (as lines of a
     * failed fdatasync may be): their shares did not leave either. */
    assert_true(count_lines(f, "\n") < n);
    /* a full batch that writes works */
    {
        size_t before = count_lines(f, "\n");

        for (size_t i = 0; i < n; i++) {
            assert_int_equal(sh_audit_line(f->audit, "client=d pad=%s req=%zu", pad, i), 0);
        }
        assert_int_equal(sh_audit_sync(f->audit), 0);
        assert_int_equal(count_lines(f, "\n"), before + n);
        assert_int_equal(count_lines(f, "client=d "), n);
    }
}

/* Summaries go out without waiting for a release, and one that cannot be
 * written is counted lost without failing the next batch. */
static void test_summaries(void **state)
{
    struct fixture *f = *state;
    int good;

    (void)sh_audit_count(f->audit, "c", "127.0.0.1", SH_AUDIT_NOT_ALLOWED, 1000);
    sh_audit_summaries_write(f->audit, 1000, true);
    assert_int_equal(count_lines(f, "summary client=c addr=127.0.0.1 "), 1);

    (void)sh_audit_count(f->audit, "c", "127.0.0.1", SH_AUDIT_NOT_ALLOWED, 2000);
    good = make_writes_fail(f);
    sh_audit_summaries_write(f->audit, 2000, true);
    writes_work_again(f, good);
    assert_int_equal(f->audit->num_lost, 1);
    assert_int_equal(sh_audit_line(f->audit, "client=c outcome=released req=3"), 0);
    assert_int_equal(sh_audit_sync(f->audit), 0);
    assert_int_equal(count_lines(f, "req=3\n"), 1);
    assert_int_equal(count_lines(f, "summary "), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_written_at_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_fails_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_part_fails_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summaries, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
