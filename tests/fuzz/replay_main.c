/* A main() for the fuzz targets without libFuzzer: runs the target once on
 * every file given (directories: every file in them, recursively not), so
 * the fuzz regressions and seeds are replayed in every build, gcc and
 * sanitizers included (suite 'hostile'). A target signals failure by
 * aborting. Fails when there was no input at all.
 *
 *   replay_T FILE_OR_DIR... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long inputs;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t len = 0, cap = 0, n;

    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        exit(2);
    }
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 65536;
            data = realloc(data, cap);
            if (!data)
                exit(2);
        }
        n = fread(data + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    fclose(f);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    inputs++;
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0)
            continue;   /* a target may have no regressions directory yet */
        if (!S_ISDIR(st.st_mode)) {
            run_file(argv[i]);
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        char **names = NULL;
        size_t count = 0;
        while (d && (de = readdir(d)) != NULL) {
            char *p;
            if (de->d_name[0] == '.')
                continue;
            p = malloc(strlen(argv[i]) + strlen(de->d_name) + 2);
            names = realloc(names, (count + 1) * sizeof *names);
            if (!p || !names)
                exit(2);
            sprintf(p, "%s/%s", argv[i], de->d_name);
            names[count++] = p;
        }
        if (d)
            closedir(d);
        if (count)
            qsort(names, count, sizeof *names, cmp);
        for (size_t k = 0; k < count; k++) {
            if (stat(names[k], &st) == 0 && S_ISREG(st.st_mode))
                run_file(names[k]);
            free(names[k]);
        }
        free(names);
    }
    printf("%ld inputs replayed\n", inputs);
    return inputs ? 0 : 1;
}
