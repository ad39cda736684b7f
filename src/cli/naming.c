/* Output names, shards, and the small file checks every task goes through.
 *
 * DESIGN: an input is known by its path and by `rel`, its path relative to
 * its input root: the directory given on the command line (walked), the
 * file's own directory (a file argument), or the current directory (an
 * entry of --files-from, "/" and "." components dropped). rel is the
 * --shard key (FNV-1a 64 of its bytes, so every machine computes the same
 * split) and gives {dir}. The output name is OUTDIR/ followed by the
 * expanded --out-pattern, or by the default name: the input's basename with
 * its extension changed when it does not name the output format, under {dir}
 * when the tree is mirrored. Expanded names are normalised and refused when
 * they would be empty or leave OUTDIR. Runs in the main thread (plan) or
 * under the pipeline's source lock (--files-from); owns nothing. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

void cli_naming_init(struct cli_naming *nm, const struct cli_options *o)
{
    nm->outdir = o->outdir;
    nm->pattern = o->out_pattern;
    nm->mirror = o->recursive || o->files_from != NULL;
    nm->forced = o->forced_format;
}

enum ip_format cli_sniff_err(const char *path, int *err)
{
    uint8_t head[64];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    struct stat st;

    *err = fd < 0 ? errno : 0;
    if (fd < 0)
        return IP_FORMAT_UNKNOWN;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return IP_FORMAT_UNKNOWN;
    }
    n = read(fd, head, sizeof head);
    close(fd);
    return n > 0 ? ip_format_detect(head, (size_t)n) : IP_FORMAT_UNKNOWN;
}

int cli_image_name(const char *name)
{
    static const char *const exts[] = {"png", "jpg", "jpeg", "jpe", "jfif", "bmp", "gif", "tga",
                                       "psd", "hdr", "pic", "pnm", "ppm", "pgm", "pbm"};
    const char *dot = strrchr(name, '.');

    if (name[0] == '.' || !dot)
        return 0;
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0)
            return 1;
    return 0;
}

enum ip_format cli_sniff(const char *path)
{
    int err;

    return cli_sniff_err(path, &err);
}

uint64_t cli_fnv1a64(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

int cli_in_shard(const struct cli_options *o, const char *rel)
{
    return o->shard_n == 0 || cli_fnv1a64(rel) % o->shard_n == o->shard_k;
}

/* A growable string. */
struct sbuf {
    char *s;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (n > PTRDIFF_MAX / 2 || b->len > PTRDIFF_MAX / 2)
        cli_oom();
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > ncap)
            ncap *= 2;
        char *ns = realloc(b->s, ncap);
        if (!ns)
            cli_oom();
        b->s = ns;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Appends the components of s that are not empty or ".", each followed by
 * '/'. Returns -1 if one is "..". keep_dotdot: append ".." as is instead. */
static int add_components(struct sbuf *b, const char *s, size_t len, int keep_dotdot)
{
    size_t i = 0;

    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 2 && s[i] == '.' && s[i + 1] == '.') {
            if (!keep_dotdot)
                return -1;
            sb_add(b, s + i, n);
            sb_add(b, "/", 1);
        } else if (n > 0 && !(n == 1 && s[i] == '.')) {
            sb_add(b, s + i, n);
            sb_add(b, "/", 1);
        }
        i = j + 1;
    }
    return 0;
}

char *cli_rel_normalize(const char *path)
{
    struct sbuf b = {0};

    add_components(&b, path, strlen(path), 1);
    if (b.len == 0)
        sb_add(&b, "", 0);
    else
        b.s[--b.len] = '\0';   /* the trailing '/' */
    return b.s;
}

const char *cli_pattern_check(const char *p)
{
    static const char *const tokens[] = {"{dir}", "{stem}", "{ext}", "{n}"};
    const char *c;

    if (!*p)
        return "the pattern is empty";
    if (*p == '/')
        return "the pattern is an absolute path (it must stay inside OUTDIR)";
    for (c = p; *c; c++) {
        if (*c == '{') {
            if (c[1] == '{') {
                c++;
                continue;
            }
            size_t k;
            for (k = 0; k < sizeof tokens / sizeof *tokens; k++)
                if (!strncmp(c, tokens[k], strlen(tokens[k])))
                    break;
            if (k == sizeof tokens / sizeof *tokens)
                return "unknown {...} field (use {dir}, {stem}, {ext}, {n}; {{ and }} for braces)";
            c += strlen(tokens[k]) - 1;
        } else if (*c == '}') {
            if (c[1] != '}')
                return "unmatched '}' (write }} for a brace)";
            c++;
        }
    }
    /* A literal ".." component would leave OUTDIR whatever the input. */
    for (c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return "the pattern has a '..' component (it must stay inside OUTDIR)";
        c += n + (e ? 1 : 0);
        if (!e)
            break;
    }
    if (p[strlen(p) - 1] == '/')
        return "the pattern ends with '/' (it must name a file)";
    return NULL;
}

static int ext_matches(const char *ext, enum ip_format fmt)
{
    if (fmt == IP_FORMAT_PNG)
        return !strcasecmp(ext, "png");
    return !strcasecmp(ext, "jpg") || !strcasecmp(ext, "jpeg") || !strcasecmp(ext, "jpe") ||
           !strcasecmp(ext, "jfif");
}

/* Expands the pattern (checked by cli_pattern_check) into b. */
static void expand(struct sbuf *b, const char *p, const char *dir, size_t dir_len, const char *base,
                   size_t stem_len, enum ip_format out_fmt, uint64_t n)
{
    while (*p) {
        if (p[0] == '{' && p[1] == '{') {
            sb_add(b, "{", 1);
            p += 2;
        } else if (p[0] == '}' && p[1] == '}') {
            sb_add(b, "}", 1);
            p += 2;
        } else if (!strncmp(p, "{dir}", 5)) {
            sb_add(b, dir, dir_len);
            p += 5;
        } else if (!strncmp(p, "{stem}", 6)) {
            sb_add(b, base, stem_len);
            p += 6;
        } else if (!strncmp(p, "{ext}", 5)) {
            sb_str(b, ip_format_ext(out_fmt));
            p += 5;
        } else if (!strncmp(p, "{n}", 3)) {
            char num[24];
            snprintf(num, sizeof num, "%llu", (unsigned long long)n);
            sb_str(b, num);
            p += 3;
        } else {
            sb_add(b, p, 1);
            p++;
        }
    }
}

char *cli_output_name(const struct cli_naming *nm, const char *in_path, const char *rel, uint64_t n,
                      enum ip_format in_fmt, const char **why)
{
    const char *base = strrchr(in_path, '/'), *slash = strrchr(rel, '/'), *dot;
    size_t dir_len = slash ? (size_t)(slash - rel) : 0, stem_len, olen;
    enum ip_format out_fmt = nm->forced;
    struct sbuf name = {0}, out = {0};

    base = base ? base + 1 : in_path;
    dot = strrchr(base, '.');
    stem_len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (out_fmt == IP_FORMAT_UNKNOWN)
        out_fmt = in_fmt == IP_FORMAT_JPEG ? IP_FORMAT_JPEG : IP_FORMAT_PNG;

    if (nm->pattern) {
        expand(&name, nm->pattern, rel, dir_len, base, stem_len, out_fmt, n);
    } else {
        if (nm->mirror && dir_len) {
            sb_add(&name, rel, dir_len);
            sb_add(&name, "/", 1);
        }
        /* The basename, its extension changed when it does not name the
         * output format (an unreadable input keeps its name: it will fail). */
        if (nm->forced == IP_FORMAT_UNKNOWN && in_fmt == IP_FORMAT_UNKNOWN) {
            sb_str(&name, base);
        } else if (dot && dot != base && ext_matches(dot + 1, out_fmt)) {
            sb_str(&name, base);
        } else {
            sb_add(&name, base, stem_len);
            sb_add(&name, ".", 1);
            sb_str(&name, ip_format_ext(out_fmt));
        }
    }

    olen = strlen(nm->outdir);
    sb_str(&out, nm->outdir);
    if (olen == 0 || nm->outdir[olen - 1] != '/')
        sb_add(&out, "/", 1);
    olen = out.len;
    if (add_components(&out, name.s ? name.s : "", name.len, 0) != 0) {
        *why = "its output name would leave OUTDIR ('..' in the path)";
        goto fail;
    }
    if (out.len == olen || (name.len && name.s[name.len - 1] == '/')) {
        *why = "its output name is empty or a directory";
        goto fail;
    }
    out.s[--out.len] = '\0';   /* the trailing '/' */
    free(name.s);
    return out.s;

fail:
    free(name.s);
    free(out.s);
    return NULL;
}

int cli_mkdir_p(const char *path)
{
    char *tmp = strdup(path);
    struct stat st;

    if (!tmp)
        cli_oom();
    if (stat(path, &st) == 0) {
        free(tmp);
        if (S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
            free(tmp);
            return -1;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
        free(tmp);
        return -1;
    }
    free(tmp);
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int cli_mkdir_parent(const char *out_path, char **last)
{
    const char *slash = strrchr(out_path, '/');
    size_t len = slash ? (size_t)(slash - out_path) : 0;
    char *dir;

    if (len == 0)
        return 0;
    if (*last && strlen(*last) == len && !memcmp(*last, out_path, len))
        return 0;
    dir = strndup(out_path, len);
    if (!dir)
        cli_oom();
    if (cli_mkdir_p(dir) != 0) {
        free(dir);
        return -1;
    }
    free(*last);
    *last = dir;
    return 0;
}

int cli_up_to_date(const char *in_path, const char *out_path)
{
    struct stat in, out;

    if (stat(out_path, &out) != 0 || !S_ISREG(out.st_mode) || stat(in_path, &in) != 0)
        return 0;
    if (out.st_mtim.tv_sec != in.st_mtim.tv_sec)
        return out.st_mtim.tv_sec > in.st_mtim.tv_sec;
    return out.st_mtim.tv_nsec > in.st_mtim.tv_nsec;
}
