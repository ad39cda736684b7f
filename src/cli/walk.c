/* Directory inputs: the image files of a directory, or of a whole tree (-r).
 *
 * DESIGN: depth first, each directory's entries in name order (files and
 * subdirectories interleaved), so the order is the same on every machine.
 * An entry is an image when its first bytes say so (cli_sniff); one that
 * cannot be opened is passed on too, so that it fails with its reason, and
 * so is a regular file named like an image (cli_image_name: photo.png,
 * IMG_1.JPG) whose bytes are not one: a zero-byte or damaged download gets
 * its line and exit 1 instead of vanishing from the batch. Hidden names
 * (".x.png", and the "._x.jpg" resource forks macOS leaves on shared
 * drives) count only by their bytes.
 * Symbolic links to files are read like files; symbolic links to
 * directories are entered only with --follow-symlinks (a directory named
 * on the command line is always entered). Loops are detected by the
 * (device, inode) of the directories on the current path, so a link to an
 * ancestor is reported and not followed. OUTDIR is never entered (outputs
 * are not inputs). A directory that cannot be read gets one error line and
 * the walk goes on.
 * Runs in the main thread before the pipeline starts; memory is one
 * directory's names per level of the path. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* A directory on the current path, for loop detection. */
struct ancestor {
    dev_t dev;
    ino_t ino;
    const char *path;
    const struct ancestor *up;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int slash = la > 0 && a[la - 1] != '/';
    char *s = malloc(la + slash + lb + 1);

    if (!s)
        cli_oom();
    memcpy(s, a, la);
    if (slash)
        s[la] = '/';
    memcpy(s + la + slash, b, lb + 1);
    return s;
}

static int walk(const struct cli_walk *w, const char *dir, const char *rel, const struct ancestor *up)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int errors = 0;
    struct ancestor self;
    struct stat st;

    if (!d) {
        cli_msg(dir, "%s", strerror(errno));
        return 1;
    }
    if (fstat(dirfd(d), &st) != 0) {
        cli_msg(dir, "%s", strerror(errno));
        closedir(d);
        return 1;
    }
    self.dev = st.st_dev;
    self.ino = st.st_ino;
    self.path = dir;
    self.up = up;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno) {
                cli_msg(dir, "%s", strerror(errno));
                errors++;
            }
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn)
                cli_oom();
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (!names[n])
            cli_oom();
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);

    for (size_t i = 0; i < n; i++) {
        char *path = join(dir, names[i]);
        char *sub = *rel ? join(rel, names[i]) : strdup(names[i]);
        struct stat lst;

        if (!sub)
            cli_oom();
        if (lstat(path, &lst) != 0) {
            cli_msg(path, "%s", strerror(errno));
            errors++;
        } else {
            int is_link = S_ISLNK(lst.st_mode), dangling = 0;

            /* A link stands for its target from here on, if it has one. */
            if (is_link) {
                if (stat(path, &st) == 0)
                    lst = st;
                else
                    dangling = 1;   /* or a loop of links */
            }
            if (S_ISDIR(lst.st_mode)) {
                const struct ancestor *a;
                if (!w->recursive || (is_link && !w->follow_symlinks)) {
                    /* not entered: not recursive, or a symlinked directory */
                } else if (w->have_skip && lst.st_dev == w->skip_dev && lst.st_ino == w->skip_ino) {
                    /* OUTDIR inside an input tree */
                } else {
                    for (a = &self; a; a = a->up)
                        if (a->dev == lst.st_dev && a->ino == lst.st_ino)
                            break;
                    if (a && !w->quiet)
                        cli_msg(path, "warning: directory loop (same directory as %s), not followed",
                                a->path);
                    else if (!a)
                        errors += walk(w, path, sub, &self);
                }
            } else {
                /* An image by its magic bytes is a task. So is an entry that
                 * cannot be opened (a dangling link, a link loop, no
                 * permission), and a regular file named like an image:
                 * its task fails with the reason, as a named INPUT would.
                 * Other files (not an image and not named like one, not a
                 * regular file) are left out. */
                int err = 0;

                if (dangling ||
                    (S_ISREG(lst.st_mode) && (cli_sniff_err(path, &err) != IP_FORMAT_UNKNOWN || err ||
                                              cli_image_name(names[i]))))
                    w->add(w->ctx, path, sub);
            }
        }
        free(sub);
        free(path);
        free(names[i]);
    }
    free(names);
    return errors;
}

int cli_walk_dir(const struct cli_walk *w, const char *root)
{
    return walk(w, root, "", NULL);
}
