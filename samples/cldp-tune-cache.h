/* cldp-tune-cache.h — the tuning cache file cldp-tune writes for a device (the format the
 * library reads: runtime/tuning.h). Included by cldp-tune.c alone. */

/* ---- the cache file ----------------------------------------------------------------------- */

static int cache_dir(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(buf, size, "%s/cldp/tuning", xdg);
    else if (home && home[0]) n = snprintf(buf, size, "%s/.cache/cldp/tuning", home);
    else return -1;
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *c = tmp + 1; *c; c++)
        if (*c == '/') {
            *c = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *c = '/';
        }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void sanitize(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; *src && n + 1 < cap; src++) {
        char c = *src;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+';
        if (!keep && n > 0 && dst[n - 1] == '_') continue;
        dst[n++] = keep ? c : '_';
    }
    dst[n] = 0;
}

static void trimmed(char *dst, size_t cap, const char *src)
{
    while (*src == ' ' || *src == '\t') src++;
    snprintf(dst, cap, "%s", src);
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\t')) dst[--n] = 0;
}

static void write_kernel(FILE *f, const char *kernel, const char *const *names, const size_t *v, size_t n)
{
    fprintf(f, "%s/32 =", kernel);
    for (size_t i = 0; i < n; i++) fprintf(f, " %s=%zu", names[i], v[i]);
    fputc('\n', f);
}

/* Writes the chosen set to `path` through a temporary file and a rename, so a reader never sees
 * half a file. */
static int write_result(const char *path, const cldp_device_info *info, const candidate *d, const candidate *x,
                        size_t threshold, const char *shapes_note, double t_default, double t_tuned)
{
    char tmp[1200], name[256], driver[128];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (len < 0 || (size_t)len >= sizeof tmp) {
        fprintf(stderr, "cldp-tune: output path too long: %s\n", path);
        return -1;
    }
    trimmed(name, sizeof name, info->name);
    trimmed(driver, sizeof driver, info->driver_version);
    if (!name[0] || strpbrk(name, "*?|") || strpbrk(driver, "*?|")) { /* would not read back as this device */
        fprintf(stderr, "cldp-tune: the device's name or driver cannot be written as an exact match; nothing written\n");
        return -1;
    }
    if (!driver[0]) snprintf(driver, sizeof driver, "*");
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "cldp-tune: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    time_t now = time(NULL);
    char date[32] = "";
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&now));
    fprintf(f, "# CLBlast SGEMM parameters written by cldp-tune; read by cldp (format: runtime/tuning.h).\n");
    fprintf(f, "# Shapes: %s\n", shapes_note);
    fprintf(f, "# Step time of those GEMMs: %.3f ms with CLBlast's defaults, %.3f ms with these (%.2fx).\n",
            t_default, t_tuned, t_default / t_tuned);
    fprintf(f, "device = %s\n", name);
    fprintf(f, "driver = %s\n", driver);
    fprintf(f, "note = cldp-tune %s, %s + %s\n", date, d->label, x->label);
    write_kernel(f, "XgemmDirect", direct_names, d->v, 10);
    write_kernel(f, "Xgemm", xgemm_names, x->v, 16);
    fprintf(f, "GemmRoutine/32 = XGEMM_MIN_INDIRECT_SIZE=%zu\n", threshold);
    int bad = ferror(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        fprintf(stderr, "cldp-tune: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}
