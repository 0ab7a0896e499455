/*
 * Without libFuzzer (gcc, or clang without SPK_FUZZ) every fuzz target is
 * linked with this driver, which feeds it each file of the corpus folders
 * named on the command line, so the corpus runs in every build.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned count = 0;

    for (int i = 1; i < argc; i++) {
        DIR *dir = opendir(argv[i]);
        struct dirent *de;

        if (dir == NULL) {
            fprintf(stderr, "replay: cannot open corpus %s\n", argv[i]);
            return 1;
        }
        while ((de = readdir(dir)) != NULL) {
            char path[4096];

            if (de->d_name[0] == '.') {
                continue;
            }
            if ((size_t)snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name) >=
                sizeof(path)) {
                continue;
            }
            if (replay_file(path) != 0) {
                closedir(dir);
                return 1;
            }
            count++;
        }
        closedir(dir);
    }
    printf("replayed %u inputs\n", count);
    return count == 0 ? 1 : 0;
}
