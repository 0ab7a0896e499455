/* The unix:// endpoint of the edge-combiner channel: parsing and connecting. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"

static void test_unix_addr(void **state)
{
    struct sockaddr_un sa;
    socklen_t len = 0;
    char big[sizeof(sa.sun_path) + 16];

    (void)state;
    assert_true(spk_endpoint_is_unix("unix:///run/c.sock"));
    assert_false(spk_endpoint_is_unix("ipc:///run/c.sock"));
    assert_int_equal(spk_unix_addr(&sa, &len, "unix:///run/c.sock"), 0);
    assert_string_equal(sa.sun_path, "/run/c.sock");
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/c.sock") + 1);
    /* '@': the abstract namespace, a leading NUL and no terminator counted */
    assert_int_equal(spk_unix_addr(&sa, &len, "unix://@spk"), 0);
    assert_int_equal(sa.sun_path[0], 0);
    assert_memory_equal(sa.sun_path + 1, "spk", 3);
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 4);
    assert_int_equal(spk_unix_addr(&sa, &len, "unix://"), SPK_ERR_INVALID_ARG);
    assert_int_equal(spk_unix_addr(&sa, &len, "unix://@"), SPK_ERR_INVALID_ARG);
    assert_int_equal(spk_unix_addr(&sa, &len, "ipc:///x"), SPK_ERR_INVALID_ARG);
    assert_int_equal(len, 0);
    /* the longest path that fits with its NUL, and one byte more */
    memcpy(big, "unix://", 7);
    memset(big + 7, 'a', sizeof(sa.sun_path) - 1);
    big[7 + sizeof(sa.sun_path) - 1] = '\0';
    assert_int_equal(spk_unix_addr(&sa, &len, big), 0);
    memset(big + 7, 'a', sizeof(sa.sun_path));
    big[7 + sizeof(sa.sun_path)] = '\0';
    assert_int_equal(spk_unix_addr(&sa, &len, big), SPK_ERR_INVALID_ARG);
}

static void test_unix_connect(void **state)
{
    char dir[] = "/tmp/spk-test-unix.XXXXXX";
    char ep[128], path[96];
    struct sockaddr_un sa;
    socklen_t len = 0;
    int lfd, fd = -1, afd;
    char buf[8];

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/c.sock", dir);
    snprintf(ep, sizeof(ep), "unix://%s", path);
    /* nothing listening yet: unavailable, to be tried again */
    assert_int_equal(spk_unix_connect(&fd, ep), SPK_ERR_UNAVAILABLE);
    assert_int_equal(fd, -1);
    assert_int_equal(spk_unix_connect(&fd, "unix://"), SPK_ERR_INVALID_ARG);
    lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    assert_true(lfd >= 0);
    assert_int_equal(spk_unix_addr(&sa, &len, ep), 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, len), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(spk_unix_connect(&fd, ep), 0);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    /* message boundaries are kept: two sends, two receives */
    assert_int_equal(send(fd, "ab", 2, 0), 2);
    assert_int_equal(send(fd, "cde", 3, 0), 3);
    assert_int_equal(recv(afd, buf, sizeof(buf), 0), 2);
    assert_int_equal(recv(afd, buf, sizeof(buf), 0), 3);
    close(afd);
    close(fd);
    close(lfd);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unix_addr),
        cmocka_unit_test(test_unix_connect),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
