/* Secret memory, allocation hooks, hardening and file helpers. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <gmp.h>
#include <linux/capability.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "base/internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define SPK_TEST_MLOCK_INTERCEPTED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPK_TEST_MLOCK_INTERCEPTED 1
#endif
#endif
#ifndef SPK_TEST_MLOCK_INTERCEPTED
#define SPK_TEST_MLOCK_INTERCEPTED 0
#endif

static char tmpdir[] = "/tmp/spk-test-secret-XXXXXX";

static bool all_zero(const uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static int prctl_dumpable_is_zero(void)
{
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 ? 1 : 0;
}

static void test_mem_init_idempotent(void **state)
{
    void *(*a)(size_t);
    void *(*r)(void *, size_t, size_t);
    void (*f)(void *, size_t);
    CRYPTO_malloc_fn om;
    CRYPTO_realloc_fn orr;
    CRYPTO_free_fn of;

    (void)state;
    assert_int_equal(spk_mem_init(), 0);
    assert_int_equal(spk_mem_init(), 0);
    mp_get_memory_functions(&a, &r, &f);
    assert_ptr_equal(a, spk_gmp_alloc);
    assert_ptr_equal(r, spk_gmp_realloc);
    assert_ptr_equal(f, spk_gmp_free);
    CRYPTO_get_mem_functions(&om, &orr, &of);
    assert_ptr_equal(om, spk_ossl_malloc);
    assert_ptr_equal(orr, spk_ossl_realloc);
    assert_ptr_equal(of, spk_ossl_free);
}

static void test_gmp_hooks(void **state)
{
    mpz_t a, b;
    uint8_t *p;
    size_t i;

    (void)state;
    /* Growth goes through the realloc hook many times. */
    mpz_init_set_ui(a, 3);
    mpz_init(b);
    for (i = 0; i < 200; i++) {
        mpz_mul_2exp(a, a, 97);
        mpz_add_ui(a, a, i);
    }
    mpz_set(b, a);
    for (i = 200; i-- > 0;) {
        mpz_sub_ui(b, b, i);
        assert_true(mpz_divisible_2exp_p(b, 97));
        mpz_tdiv_q_2exp(b, b, 97);
    }
    assert_int_equal(mpz_cmp_ui(b, 3), 0);
    mpz_clears(a, b, NULL);

    /* The hooks directly: realloc keeps the prefix, both ways. */
    p = spk_gmp_alloc(100);
    for (i = 0; i < 100; i++) {
        p[i] = (uint8_t)i;
    }
    p = spk_gmp_realloc(p, 100, 5000);
    for (i = 0; i < 100; i++) {
        assert_int_equal(p[i], (uint8_t)i);
    }
    p = spk_gmp_realloc(p, 5000, 10);
    for (i = 0; i < 10; i++) {
        assert_int_equal(p[i], (uint8_t)i);
    }
    spk_gmp_free(p, 10);
    spk_gmp_free(NULL, 0);
}

static void test_openssl_hooks(void **state)
{
    uint8_t *p;
    BIGNUM *x, *y;
    BN_CTX *ctx;
    size_t i;

    (void)state;
    assert_null(OPENSSL_malloc(0));
    p = OPENSSL_malloc(33);
    assert_non_null(p);
    /* Header of 16 keeps malloc's alignment. */
    assert_int_equal((uintptr_t)p % 16, 0);
    for (i = 0; i < 33; i++) {
        p[i] = (uint8_t)(i + 1);
    }
    p = OPENSSL_realloc(p, 100000);
    assert_non_null(p);
    for (i = 0; i < 33; i++) {
        assert_int_equal(p[i], (uint8_t)(i + 1));
    }
    p = OPENSSL_realloc(p, 7);
    for (i = 0; i < 7; i++) {
        assert_int_equal(p[i], (uint8_t)(i + 1));
    }
    OPENSSL_free(p);
    OPENSSL_free(NULL);
    p = OPENSSL_realloc(NULL, 10);
    assert_non_null(p);
    assert_null(OPENSSL_realloc(p, 0)); /* frees */
    p = OPENSSL_zalloc(64);
    assert_true(all_zero(p, 64));
    OPENSSL_clear_free(p, 64);
    assert_null(spk_ossl_malloc(SIZE_MAX - 8, __FILE__, __LINE__));

    /* OpenSSL itself runs on them. */
    ctx = BN_CTX_new();
    x = BN_new();
    y = BN_new();
    assert_non_null(ctx);
    assert_int_equal(BN_set_word(x, 65537), 1);
    assert_int_equal(BN_lshift(x, x, 4000), 1);
    assert_int_equal(BN_sqr(y, x, ctx), 1);
    assert_int_equal(BN_num_bits(y), 2 * BN_num_bits(x) - 1);
    BN_clear_free(x);
    BN_free(y);
    BN_CTX_free(ctx);
}

static void test_secret_new(void **state)
{
    uint8_t *p;

    (void)state;
    p = spk_secret_new(1000);
    assert_non_null(p);
    assert_true(all_zero(p, 1000));
    memset(p, 0xab, 1000);
    assert_int_equal(spk_secret_noaccess(p), 0);
    assert_int_equal(spk_secret_readwrite(p), 0);
    assert_int_equal(p[999], 0xab);
    spk_secret_free(p);
    p = spk_secret_new(0);
    assert_non_null(p);
    spk_secret_free(p);
    spk_secret_free(NULL);
    /* 64-aligned when the size is a multiple of 64 (the arena relies on it). */
    p = spk_secret_new(640);
    assert_int_equal((uintptr_t)p % 64, 0);
    spk_secret_free(p);
}

static void test_arena(void **state)
{
    struct spk_arena *arena;
    uint8_t *a, *b, *c;

    (void)state;
    assert_null(spk_arena_new(0));
    arena = spk_arena_new(1000); /* rounded to 1024 */
    assert_non_null(arena);
    assert_int_equal(spk_arena_used(arena), 0);
    a = spk_arena_alloc(arena, 10);
    b = spk_arena_alloc(arena, 100);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 64, 0);
    assert_int_equal((uintptr_t)b % 64, 0);
    assert_ptr_equal(b, a + 64);
    assert_int_equal(spk_arena_used(arena), 164);
    assert_true(all_zero(a, 10));
    assert_true(all_zero(b, 100));
    memset(a, 0xa5, 64);
    memset(b, 0x5a, 100);
    /* 1024 - 192 = 832 left */
    assert_null(spk_arena_alloc(arena, 833));
    c = spk_arena_alloc(arena, 832);
    assert_non_null(c);
    memset(c, 0x11, 832);
    assert_null(spk_arena_alloc(arena, 1));
    assert_null(spk_arena_alloc(arena, SIZE_MAX));

    /* Reset wipes everything handed out; the pointers still show the memory. */
    spk_arena_reset(arena);
    assert_int_equal(spk_arena_used(arena), 0);
    assert_true(all_zero(a, 1024));
    /* And allocation starts over, zeroed. */
    assert_ptr_equal(spk_arena_alloc(arena, 32), a);
    spk_arena_free(arena);
    spk_arena_free(NULL);
    spk_arena_reset(NULL);
    assert_null(spk_arena_alloc(NULL, 1));
}

static void test_stack_wipe(void **state)
{
    (void)state;
    spk_stack_wipe(8192);
}

/* harden in a child: the test process keeps its core dumps and unlocked memory. */
static void test_harden_fails_closed(void **state)
{
    int status = 0;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        struct rlimit rl = {0, 0};
        char why[256];
        int r;

        /* Without CAP_IPC_LOCK (root has it) the limit applies. */
        if (syscall(SYS_capget, &hdr, data) != 0) {
            _exit(10);
        }
        data[0].effective &= ~(1u << CAP_IPC_LOCK);
        data[0].permitted &= ~(1u << CAP_IPC_LOCK);
        if (syscall(SYS_capset, &hdr, data) != 0) {
            _exit(11);
        }
        if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
            _exit(12);
        }
        r = spk_process_harden(false, why, sizeof(why));
        if (SPK_TEST_MLOCK_INTERCEPTED) {
            /*
             * ASan's interceptor turns mlockall into a no-op that succeeds, so
             * the failure cannot be produced here; the normal build covers it.
             */
            _exit(r == 0 && spk_memory_locked() && prctl_dumpable_is_zero() ? 0 : 16);
        }
        if (r != SPK_ERR_MLOCK || strstr(why, "RLIMIT_MEMLOCK") == NULL ||
            strchr(why, '\n') != NULL || spk_memory_locked()) {
            _exit(13);
        }
        if (prctl_dumpable_is_zero() != 1) {
            _exit(14);
        }
        /* Allowed to run unlocked: success, the reason is still given. */
        why[0] = 'x';
        r = spk_process_harden(true, why, sizeof(why));
        if (r != 0 || strstr(why, "UNLOCKED") == NULL || spk_memory_locked()) {
            _exit(15);
        }
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_harden_locks(void **state)
{
    int status = 0;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        char why[256];
        uint8_t *p;

        if (spk_process_harden(false, why, sizeof(why)) != 0 || !spk_memory_locked()) {
            _exit(20);
        }
        if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0) {
            _exit(21);
        }
        p = spk_secret_new(4096);
        if (p == NULL) {
            _exit(22);
        }
        spk_secret_free(p);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static const char *tmp_path(const char *name)
{
    static char path[512];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return path;
}

static void test_file_write_new(void **state)
{
    static const uint8_t data[] = "secret share\n";
    struct stat st;
    uint8_t *buf = NULL;
    size_t len = 0;
    mode_t old;

    (void)state;
    old = umask(077);
    assert_int_equal(spk_file_write_new(tmp_path("a"), 0600, data, sizeof(data)), 0);
    assert_int_equal(stat(tmp_path("a"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* The umask does not change the mode asked for. */
    assert_int_equal(spk_file_write_new(tmp_path("pub"), 0644, data, 3), 0);
    assert_int_equal(stat(tmp_path("pub"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(st.st_size, 3);
    umask(old);

    /* Exclusive: an existing file is refused and left alone. */
    assert_int_equal(spk_file_write_new(tmp_path("a"), 0600, data, 2), SPK_ERR_EXISTS);
    assert_int_equal(spk_file_read(tmp_path("a"), 1024, &buf, &len), 0);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(buf, data, sizeof(data));
    spk_file_free(buf, len);
    /* Not through a symlink either. */
    assert_int_equal(symlink("nowhere", tmp_path("link")), 0);
    assert_int_equal(spk_file_write_new(tmp_path("link"), 0600, data, 2), SPK_ERR_EXISTS);
    assert_int_equal(access(tmp_path("nowhere"), F_OK), -1);

    assert_int_equal(spk_file_write_new(tmp_path("no/such/dir"), 0600, data, 2), SPK_ERR_IO);
    assert_int_equal(spk_file_write_new(tmp_path("b"), 0600, NULL, 2), SPK_ERR_INVALID_ARG);
    assert_int_equal(spk_file_write_new(tmp_path("empty"), 0600, NULL, 0), 0);
}

static void test_file_read_cap(void **state)
{
    uint8_t data[100];
    uint8_t *buf = NULL;
    size_t len = 0;

    (void)state;
    randombytes_buf(data, sizeof(data));
    assert_int_equal(spk_file_write_new(tmp_path("c"), 0600, data, sizeof(data)), 0);
    assert_int_equal(spk_file_read(tmp_path("c"), 99, &buf, &len), SPK_ERR_MALFORMED);
    assert_null(buf);
    assert_int_equal(spk_file_read(tmp_path("c"), 100, &buf, &len), 0);
    assert_int_equal(len, 100);
    assert_memory_equal(buf, data, 100);
    spk_file_free(buf, len);

    assert_int_equal(spk_file_read_secret(tmp_path("c"), 99, &buf, &len), SPK_ERR_MALFORMED);
    assert_int_equal(spk_file_read_secret(tmp_path("c"), 4096, &buf, &len), 0);
    assert_int_equal(len, 100);
    assert_memory_equal(buf, data, 100);
    spk_secret_free(buf);

    assert_int_equal(spk_file_read(tmp_path("empty"), 10, &buf, &len), 0);
    assert_int_equal(len, 0);
    spk_file_free(buf, len);
    assert_int_equal(spk_file_read(tmp_path("missing"), 10, &buf, &len), SPK_ERR_IO);
    assert_int_equal(spk_file_read(tmpdir, 10, &buf, &len), SPK_ERR_IO);
    /* Not a regular file: the cap still holds. /dev/zero never ends. */
    assert_int_equal(spk_file_read("/dev/zero", 64, &buf, &len), SPK_ERR_MALFORMED);
}

/* A secret file that group or others may touch, or another uid owns, is
 * refused, as OpenSSH refuses such a private key. */
static void test_file_read_private(void **state)
{
    static const mode_t open_modes[] = {0640, 0604, 0620, 0602, 0610, 0601, 0644, 0660};
    uint8_t data[16];
    uint8_t *buf = NULL;
    size_t len = 0;

    (void)state;
    randombytes_buf(data, sizeof(data));
    assert_int_equal(spk_file_write_new(tmp_path("private"), 0600, data, sizeof(data)), 0);
    assert_int_equal(spk_file_read_private(tmp_path("private"), 4096, &buf, &len), 0);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(buf, data, sizeof(data));
    spk_secret_free(buf);
    /* 0400 is as private as 0600 */
    assert_int_equal(chmod(tmp_path("private"), 0400), 0);
    assert_int_equal(spk_file_read_private(tmp_path("private"), 4096, &buf, &len), 0);
    spk_secret_free(buf);
    for (size_t i = 0; i < sizeof(open_modes) / sizeof(open_modes[0]); i++) {
        buf = NULL;
        assert_int_equal(chmod(tmp_path("private"), open_modes[i]), 0);
        assert_int_equal(spk_file_read_private(tmp_path("private"), 4096, &buf, &len),
                         SPK_ERR_PERMISSIONS);
        assert_null(buf);
        /* the same file is fine for a reader of public files */
        assert_int_equal(spk_file_read(tmp_path("private"), 4096, &buf, &len), 0);
        spk_file_free(buf, len);
    }
    assert_non_null(strstr(spk_strerror(SPK_ERR_PERMISSIONS), "chmod 600"));
    /* systemd's credentials directory grants access by ACL (mode 0440 here):
     * a file directly in it is read; one below it, or elsewhere, is not */
    assert_int_equal(chmod(tmp_path("private"), 0440), 0);
    assert_int_equal(setenv("CREDENTIALS_DIRECTORY", tmpdir, 1), 0);
    assert_int_equal(spk_file_read_private(tmp_path("private"), 4096, &buf, &len), 0);
    spk_secret_free(buf);
    assert_int_equal(setenv("CREDENTIALS_DIRECTORY", "/nonexistent", 1), 0);
    assert_int_equal(spk_file_read_private(tmp_path("private"), 4096, &buf, &len),
                     SPK_ERR_PERMISSIONS);
    assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
    /* owned by another uid: only root can make such a file */
    if (geteuid() == 0) {
        assert_int_equal(chmod(tmp_path("private"), 0600), 0);
        assert_int_equal(chown(tmp_path("private"), 65534, (gid_t)-1), 0);
        assert_int_equal(spk_file_read_private(tmp_path("private"), 4096, &buf, &len),
                         SPK_ERR_PERMISSIONS);
    }
}

static int setup_dir(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
    static const char *names[] = {"a", "pub", "link", "empty", "c"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        (void)unlink(tmp_path(names[i]));
    }
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_init_idempotent),
        cmocka_unit_test(test_gmp_hooks),
        cmocka_unit_test(test_openssl_hooks),
        cmocka_unit_test(test_secret_new),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_stack_wipe),
        cmocka_unit_test(test_harden_fails_closed),
        cmocka_unit_test(test_harden_locks),
        cmocka_unit_test(test_file_write_new),
        cmocka_unit_test(test_file_read_cap),
        cmocka_unit_test(test_file_read_private),
    };

    /* First, before anything allocates through OpenSSL. */
    if (spk_mem_init() != 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
