/* tuning.c — per-device CLBlast tuning: the text format of tuning.h, what the parser knows of the
 * GEMM kernels' parameters, and matching an entry to a device (its sources and applying it:
 * tuning_sources.c). */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "tuning.h"

#include <clblast_c.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUE 1000000u /* no CLBlast tuning parameter comes near; catches typos and overflow */

/* ---- what the parser knows about the GEMM routine's kernels ------------------------------ */

typedef struct known_kernel {
    const char *name;
    const char *params[CLDP_TUNING_MAX_PARAMS]; /* NULL-terminated */
} known_kernel;

/* Parameter names as CLBlast 1.5's database lists them (src/database/kernels/). */
static const known_kernel known_kernels[] = {
    {"Xgemm", {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG", "SA",
               "SB", "STRM", "STRN", "VWM", "VWN", NULL}},
    {"XgemmDirect", {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD", "PADA", "PADB", "VWMD", "VWND", "WGD", NULL}},
    {"GemmRoutine", {"XGEMM_MIN_INDIRECT_SIZE", NULL}},
    {"Copy", {"COPY_DIMX", "COPY_DIMY", "COPY_VW", "COPY_WPT", NULL}},
    {"Pad", {"PAD_DIMX", "PAD_DIMY", "PAD_WPTX", "PAD_WPTY", NULL}},
    {"Transpose", {"TRA_DIM", "TRA_PAD", "TRA_SHUFFLE", "TRA_WPT", NULL}},
    {"Padtranspose", {"PADTRA_PAD", "PADTRA_TILE", "PADTRA_WPT", NULL}},
};

static const known_kernel *find_known(const char *name)
{
    for (size_t i = 0; i < sizeof known_kernels / sizeof *known_kernels; i++)
        if (strcmp(known_kernels[i].name, name) == 0) return &known_kernels[i];
    return NULL;
}

static size_t pget(const cldp_tuning_kernel *k, const char *name)
{
    for (size_t i = 0; i < k->nparams; i++)
        if (strcmp(k->param_names[i], name) == 0) return k->param_values[i];
    return 0;
}

static size_t precision_bytes(int precision)
{
    switch (precision) {
    case 16: return 2;
    case 32: return 4;
    case 64: case 3232: return 8;
    default: return 16;
    }
}

static int is_pow2_upto16(size_t v) { return v == 1 || v == 2 || v == 4 || v == 8 || v == 16; }

/* What a known kernel needs of its parameters to compile and give correct results (the
 * constraints CLBlast's own tuners apply), and its work-group size and local memory in bytes.
 * Returns NULL when fine, else a static description of the first violated rule. */
static const char *kernel_rules(const cldp_tuning_kernel *k, size_t *wg, size_t *local_bytes)
{
    const char *n = k->name;
    size_t b = precision_bytes(k->precision);
    *wg = 1;
    *local_bytes = 0;
#define P(x) pget(k, #x)
#define RULE(cond, text) do { if (!(cond)) return text; } while (0)
    if (strcmp(n, "Xgemm") == 0) {
        size_t GEMMK = P(GEMMK), KREG = P(KREG), KWG = P(KWG), KWI = P(KWI), MDIMA = P(MDIMA),
               MDIMC = P(MDIMC), MWG = P(MWG), NDIMB = P(NDIMB), NDIMC = P(NDIMC), NWG = P(NWG);
        size_t VWM = P(VWM), VWN = P(VWN);
        RULE(KREG && KWG && KWI && MDIMA && MDIMC && MWG && NDIMB && NDIMC && NWG,
             "KREG, KWG, KWI, MDIMA, MDIMC, MWG, NDIMB, NDIMC and NWG must be positive");
        RULE(GEMMK <= 1 && P(SA) <= 1 && P(SB) <= 1 && P(STRM) <= 1 && P(STRN) <= 1,
             "GEMMK, SA, SB, STRM and STRN must be 0 or 1");
        RULE(is_pow2_upto16(VWM) && is_pow2_upto16(VWN), "VWM and VWN must be 1, 2, 4, 8 or 16");
        RULE(KWG % KWI == 0, "KWG must be a multiple of KWI");
        RULE(MWG % (MDIMC * VWM) == 0 && MWG % (MDIMA * VWM) == 0,
             "MWG must be a multiple of MDIMC*VWM and of MDIMA*VWM");
        RULE(NWG % (NDIMC * VWN) == 0 && NWG % (NDIMB * VWN) == 0,
             "NWG must be a multiple of NDIMC*VWN and of NDIMB*VWN");
        if (GEMMK == 0) {
            RULE((MDIMC * NDIMC) % MDIMA == 0 && (MDIMC * NDIMC) % NDIMB == 0 &&
                     KWG % (MDIMC * NDIMC / MDIMA) == 0 && KWG % (MDIMC * NDIMC / NDIMB) == 0,
                 "KWG must be a multiple of MDIMC*NDIMC/MDIMA and of MDIMC*NDIMC/NDIMB");
        } else {
            RULE(KREG % VWN == 0, "with GEMMK=1, KREG must be a multiple of VWN");
            RULE(MDIMC == MDIMA && NDIMC == NDIMB, "with GEMMK=1, MDIMA must equal MDIMC and NDIMB NDIMC");
        }
        *wg = MDIMC * NDIMC;
        *local_bytes = b * (P(SA) * KWG * MWG + P(SB) * KWG * NWG);
    } else if (strcmp(n, "XgemmDirect") == 0) {
        size_t KWID = P(KWID), MDIMAD = P(MDIMAD), MDIMCD = P(MDIMCD), NDIMBD = P(NDIMBD),
               NDIMCD = P(NDIMCD), VWMD = P(VWMD), VWND = P(VWND), WGD = P(WGD);
        RULE(KWID && MDIMAD && MDIMCD && NDIMBD && NDIMCD && WGD,
             "KWID, MDIMAD, MDIMCD, NDIMBD, NDIMCD and WGD must be positive");
        RULE(P(PADA) <= 1 && P(PADB) <= 1, "PADA and PADB must be 0 or 1");
        RULE(is_pow2_upto16(VWMD) && is_pow2_upto16(VWND), "VWMD and VWND must be 1, 2, 4, 8 or 16");
        RULE(WGD % KWID == 0, "WGD must be a multiple of KWID");
        RULE(WGD % (MDIMCD * VWMD) == 0 && WGD % (MDIMAD * VWMD) == 0,
             "WGD must be a multiple of MDIMCD*VWMD and of MDIMAD*VWMD");
        RULE(WGD % (NDIMCD * VWND) == 0 && WGD % (NDIMBD * VWND) == 0,
             "WGD must be a multiple of NDIMCD*VWND and of NDIMBD*VWND");
        RULE((MDIMCD * NDIMCD) % MDIMAD == 0 && (MDIMCD * NDIMCD) % NDIMBD == 0 &&
                 WGD % (MDIMCD * NDIMCD / MDIMAD) == 0 && WGD % (MDIMCD * NDIMCD / NDIMBD) == 0,
             "WGD must be a multiple of MDIMCD*NDIMCD/MDIMAD and of MDIMCD*NDIMCD/NDIMBD");
        *wg = MDIMCD * NDIMCD;
        *local_bytes = b * (WGD * (WGD + P(PADA)) + WGD * (WGD + P(PADB)));
    } else if (strcmp(n, "GemmRoutine") == 0) {
        RULE(P(XGEMM_MIN_INDIRECT_SIZE) <= 100000, "XGEMM_MIN_INDIRECT_SIZE must be at most 100000");
    } else if (strcmp(n, "Copy") == 0) {
        RULE(P(COPY_DIMX) && P(COPY_DIMY) && P(COPY_WPT), "COPY_DIMX, COPY_DIMY and COPY_WPT must be positive");
        RULE(is_pow2_upto16(P(COPY_VW)), "COPY_VW must be 1, 2, 4, 8 or 16");
        *wg = P(COPY_DIMX) * P(COPY_DIMY);
    } else if (strcmp(n, "Pad") == 0) {
        RULE(P(PAD_DIMX) && P(PAD_DIMY) && P(PAD_WPTX) && P(PAD_WPTY), "every Pad parameter must be positive");
        *wg = P(PAD_DIMX) * P(PAD_DIMY);
    } else if (strcmp(n, "Transpose") == 0) {
        RULE(P(TRA_DIM) > 0, "TRA_DIM must be positive");
        RULE(P(TRA_PAD) <= 1 && P(TRA_SHUFFLE) <= 1, "TRA_PAD and TRA_SHUFFLE must be 0 or 1");
        RULE(is_pow2_upto16(P(TRA_WPT)), "TRA_WPT must be 1, 2, 4, 8 or 16");
        *wg = P(TRA_DIM) * P(TRA_DIM);
        *local_bytes = b * (P(TRA_DIM) * P(TRA_WPT)) * (P(TRA_DIM) * P(TRA_WPT) + P(TRA_PAD));
    } else if (strcmp(n, "Padtranspose") == 0) {
        RULE(P(PADTRA_TILE) > 0 && P(PADTRA_WPT) > 0, "PADTRA_TILE and PADTRA_WPT must be positive");
        RULE(P(PADTRA_PAD) <= 1, "PADTRA_PAD must be 0 or 1");
        *wg = P(PADTRA_TILE) * P(PADTRA_TILE);
        *local_bytes = b * (P(PADTRA_TILE) * P(PADTRA_WPT)) * (P(PADTRA_TILE) * P(PADTRA_WPT) + P(PADTRA_PAD));
    }
#undef RULE
#undef P
    return NULL;
}

/* ---- parsing ----------------------------------------------------------------------------- */

typedef struct parser {
    const char *origin;
    unsigned line;
    cldp_tuning_file *out;
    size_t capacity;
    int have_driver, have_version; /* of the current entry */
} parser;

#define PFAIL(p, ...) parse_fail((p), __VA_ARGS__)

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static cldp_status parse_fail(const parser *p, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cldp_fail(CLDP_ERR_FORMAT, "%s:%u: %s (see runtime/tuning.h for the format; fix or delete the file)",
                     p->origin, p->line, what);
}

static void trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b)) (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1])) (*e)--;
}

/* Copies [b, e) into dst (size cap) as a C string; -1 when it does not fit. */
static int copy_span(char *dst, size_t cap, const char *b, const char *e)
{
    size_t n = (size_t)(e - b);
    if (n >= cap) return -1;
    memcpy(dst, b, n);
    dst[n] = 0;
    return 0;
}

static int span_is(const char *b, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(e - b) == n && memcmp(b, word, n) == 0;
}

static int ident_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Parses a decimal value in [b, e); -1 when it is not one or exceeds MAX_VALUE. */
static int parse_value(const char *b, const char *e, size_t *out)
{
    size_t v = 0;
    if (b == e) return -1;
    for (; b < e; b++) {
        if (*b < '0' || *b > '9') return -1;
        v = v * 10 + (size_t)(*b - '0');
        if (v > MAX_VALUE) return -1;
    }
    *out = v;
    return 0;
}

static cldp_status check_known(const parser *p, const cldp_tuning_kernel *k)
{
    const known_kernel *kk = find_known(k->name);
    if (!kk) return CLDP_OK; /* another CLBlast kernel: CLBlast checks the names when applying */
    size_t want = 0;
    for (; kk->params[want]; want++) {
        int seen = 0;
        for (size_t i = 0; i < k->nparams; i++) seen |= strcmp(k->param_names[i], kk->params[want]) == 0;
        if (!seen) return PFAIL(p, "%s/%d lacks parameter %s (CLBlast needs all of them)", k->name, k->precision, kk->params[want]);
    }
    for (size_t i = 0; i < k->nparams; i++) {
        int known = 0;
        for (size_t j = 0; j < want; j++) known |= strcmp(k->param_names[i], kk->params[j]) == 0;
        if (!known) return PFAIL(p, "%s/%d has no parameter named %s", k->name, k->precision, k->param_names[i]);
    }
    size_t wg, lmem;
    const char *broken = kernel_rules(k, &wg, &lmem);
    if (broken) return PFAIL(p, "%s/%d: impossible parameters: %s", k->name, k->precision, broken);
    return CLDP_OK;
}

/* "Kernel/precision = NAME=VALUE ..." with key [kb, ke) and value [vb, ve). */
static cldp_status parse_kernel_line(parser *p, cldp_tuning_entry *e, const char *kb, const char *ke,
                                     const char *vb, const char *ve)
{
    const char *slash = memchr(kb, '/', (size_t)(ke - kb));
    if (e->nkernels == CLDP_TUNING_MAX_KERNELS)
        return PFAIL(p, "more than %d kernel lines in the entry for \"%s\"", CLDP_TUNING_MAX_KERNELS, e->device);
    cldp_tuning_kernel *k = &e->kernels[e->nkernels];
    memset(k, 0, sizeof *k);
    k->line = p->line;
    const char *nb = kb, *ne = slash;
    trim(&nb, &ne);
    for (const char *c = nb; c < ne; c++)
        if (!ident_char(*c)) return PFAIL(p, "a kernel name has letters, digits and '_' only: \"%.*s\"", (int)(ne - nb), nb);
    if (nb == ne || copy_span(k->name, sizeof k->name, nb, ne) != 0)
        return PFAIL(p, "missing or overlong kernel name before '/'");
    const char *pb = slash + 1, *pe = ke;
    trim(&pb, &pe);
    size_t prec;
    if (parse_value(pb, pe, &prec) != 0 || (prec != 16 && prec != 32 && prec != 64 && prec != 3232 && prec != 6464))
        return PFAIL(p, "precision of %s must be 16, 32, 64, 3232 or 6464, not \"%.*s\"", k->name, (int)(pe - pb), pb);
    k->precision = (int)prec;
    for (size_t i = 0; i < e->nkernels; i++)
        if (strcmp(e->kernels[i].name, k->name) == 0 && e->kernels[i].precision == k->precision)
            return PFAIL(p, "%s/%d appears twice in the entry for \"%s\" (first at line %u)", k->name, k->precision,
                         e->device, e->kernels[i].line);
    const char *c = vb;
    while (c < ve) {
        while (c < ve && isspace((unsigned char)*c)) c++;
        if (c == ve) break;
        const char *tb = c;
        while (c < ve && !isspace((unsigned char)*c)) c++;
        const char *te = c, *eq = memchr(tb, '=', (size_t)(te - tb));
        if (!eq || eq == tb) return PFAIL(p, "expected NAME=VALUE, got \"%.*s\"", (int)(te - tb), tb);
        for (const char *q = tb; q < eq; q++)
            if (!ident_char(*q)) return PFAIL(p, "bad parameter name \"%.*s\"", (int)(eq - tb), tb);
        if (k->nparams == CLDP_TUNING_MAX_PARAMS) return PFAIL(p, "more than %d parameters", CLDP_TUNING_MAX_PARAMS);
        char *name = k->param_names[k->nparams];
        if (copy_span(name, sizeof k->param_names[0], tb, eq) != 0) return PFAIL(p, "overlong parameter name \"%.*s\"", (int)(eq - tb), tb);
        if (parse_value(eq + 1, te, &k->param_values[k->nparams]) != 0)
            return PFAIL(p, "value of %s must be a whole number from 0 to %u, not \"%.*s\"", name, MAX_VALUE, (int)(te - eq - 1), eq + 1);
        for (size_t i = 0; i < k->nparams; i++)
            if (strcmp(k->param_names[i], name) == 0) return PFAIL(p, "parameter %s given twice", name);
        k->nparams++;
    }
    if (k->nparams == 0) return PFAIL(p, "%s/%d has no parameters", k->name, k->precision);
    TRY(check_known(p, k));
    e->nkernels++;
    return CLDP_OK;
}

static cldp_status finish_entry(parser *p, const cldp_tuning_entry *e)
{
    if (e && e->nkernels == 0) {
        unsigned line = p->line;
        p->line = e->line;
        cldp_status st = PFAIL(p, "the entry for \"%s\" has no kernel lines (e.g. \"Xgemm/32 = GEMMK=0 ...\")", e->device);
        p->line = line;
        return st;
    }
    return CLDP_OK;
}

static cldp_status parse_line(parser *p, const char *b, const char *e)
{
    cldp_tuning_file *f = p->out;
    cldp_tuning_entry *cur = f->count ? &f->entries[f->count - 1] : NULL;
    trim(&b, &e);
    if (b == e || *b == '#') return CLDP_OK;
    const char *eq = memchr(b, '=', (size_t)(e - b));
    if (!eq) return PFAIL(p, "expected \"key = value\", got \"%.*s\"", (int)(e - b) > 80 ? 80 : (int)(e - b), b);
    const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
    trim(&kb, &ke);
    trim(&vb, &ve);
    if (span_is(kb, ke, "device")) {
        TRY(finish_entry(p, cur));
        if (vb == ve) return PFAIL(p, "empty device name");
        if (f->count == p->capacity) {
            size_t cap = p->capacity ? 2 * p->capacity : 4;
            cldp_tuning_entry *n = cldp_realloc(f->entries, cap * sizeof *n, "tuning entries");
            if (!n) return cldp_fail(CLDP_ERR_HOST_MEMORY, "%s: out of host memory reading tuning entries", p->origin);
            f->entries = n;
            p->capacity = cap;
        }
        cur = &f->entries[f->count];
        memset(cur, 0, sizeof *cur);
        cur->line = p->line;
        strcpy(cur->driver, "*");
        strcpy(cur->version, "*");
        p->have_driver = p->have_version = 0;
        if (copy_span(cur->device, sizeof cur->device, vb, ve) != 0) return PFAIL(p, "device name longer than %zu characters", sizeof cur->device - 1);
        f->count++;
        return CLDP_OK;
    }
    if (span_is(kb, ke, "note")) return CLDP_OK;
    if (!cur) return PFAIL(p, "\"%.*s\" before the first \"device = ...\" line", (int)(ke - kb), kb);
    if (span_is(kb, ke, "driver")) {
        if (p->have_driver++) return PFAIL(p, "a second driver line for \"%s\"", cur->device);
        if (vb == ve) return PFAIL(p, "empty driver version (leave the line out to match any)");
        if (copy_span(cur->driver, sizeof cur->driver, vb, ve) != 0) return PFAIL(p, "driver version longer than %zu characters", sizeof cur->driver - 1);
        return CLDP_OK;
    }
    if (span_is(kb, ke, "version")) {
        if (p->have_version++) return PFAIL(p, "a second version line for \"%s\"", cur->device);
        if (vb == ve) return PFAIL(p, "empty device version (leave the line out to match any)");
        if (copy_span(cur->version, sizeof cur->version, vb, ve) != 0) return PFAIL(p, "device version longer than %zu characters", sizeof cur->version - 1);
        return CLDP_OK;
    }
    if (memchr(kb, '/', (size_t)(ke - kb))) return parse_kernel_line(p, cur, kb, ke, vb, ve);
    return PFAIL(p, "unknown key \"%.*s\": expected device, driver, version, note or Kernel/precision (e.g. Xgemm/32)",
                 (int)(ke - kb) > 40 ? 40 : (int)(ke - kb), kb);
}

void cldp_tuning_file_free(cldp_tuning_file *f)
{
    if (!f) return;
    free(f->entries);
    f->entries = NULL;
    f->count = 0;
}

cldp_status cldp_tuning_parse(const char *text, size_t len, const char *origin, cldp_tuning_file *out)
{
    REQUIRE(out && (text || len == 0), "cldp_tuning_parse: bad arguments");
    if (!text) text = ""; /* empty: NULL + 0 and memchr(NULL, ...) are undefined behaviour */
    memset(out, 0, sizeof *out);
    snprintf(out->origin, sizeof out->origin, "%s", origin ? origin : "tuning text");
    parser p = {out->origin, 0, out, 0, 0, 0};
    const char *c = text, *end = text + len;
    cldp_status st = CLDP_OK;
    if (len > 0 && memchr(text, 0, len)) {
        p.line = 1;
        for (const char *q = text; *q; q++) p.line += *q == '\n';
        st = PFAIL(&p, "a NUL byte: this is not a text file");
    }
    while (st == CLDP_OK && c < end) {
        const char *nl = memchr(c, '\n', (size_t)(end - c));
        const char *le = nl ? nl : end;
        p.line++;
        st = parse_line(&p, c, le);
        c = nl ? nl + 1 : end;
    }
    if (st == CLDP_OK) st = finish_entry(&p, out->count ? &out->entries[out->count - 1] : NULL);
    if (st != CLDP_OK) cldp_tuning_file_free(out);
    return st;
}

cldp_status cldp_tuning_load(const char *path, cldp_tuning_file *out, int *found)
{
    REQUIRE(path && out && found, "cldp_tuning_load: bad arguments");
    memset(out, 0, sizeof *out);
    *found = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return CLDP_OK;
        return cldp_fail(CLDP_ERR_IO, "%s: cannot open the tuning file: %s", path, strerror(errno));
    }
    size_t cap = 4096, n = 0;
    char *buf = cldp_malloc(cap, "tuning file");
    cldp_status st = CLDP_OK;
    while (buf) {
        if (n == cap) {
            if (cap >= ((size_t)16 << 20)) {
                st = cldp_fail(CLDP_ERR_FORMAT, "%s: over 16 MiB: not a tuning file", path);
                break;
            }
            char *nb = cldp_realloc(buf, cap * 2, "tuning file");
            if (!nb) { /* an error, not a shorter file */
                st = cldp_fail(CLDP_ERR_HOST_MEMORY, "%s: out of host memory reading the tuning file", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) st = cldp_fail(CLDP_ERR_IO, "%s: cannot read the tuning file: %s", path, strerror(errno));
            break;
        }
    }
    fclose(fp);
    if (st == CLDP_OK && !buf) st = cldp_fail(CLDP_ERR_HOST_MEMORY, "%s: out of host memory reading the tuning file", path);
    if (st == CLDP_OK) st = cldp_tuning_parse(buf, n, path, out);
    free(buf);
    if (st == CLDP_OK) *found = 1;
    return st;
}

/* ---- matching ---------------------------------------------------------------------------- */

/* One alternative: the pattern is [pat, end). */
static int match_one(const char *pat, const char *end, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (pat < end && *pat == '*') {
            star = pat++;
            resume = s;
        } else if (pat < end && (*pat == '?' || *pat == *s)) {
            pat++;
            s++;
        } else if (star) { /* let the last '*' swallow one more character */
            pat = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (pat < end && *pat == '*') pat++;
    return pat == end;
}

int cldp_tuning_pattern_match(const char *pat, const char *s)
{
    for (;;) {
        const char *bar = strchr(pat, '|');
        const char *end = bar ? bar : pat + strlen(pat);
        if (match_one(pat, end, s)) return 1;
        if (!bar) return 0;
        pat = bar + 1;
    }
}

static int is_pattern(const char *s) { return strpbrk(s, "*?|") != NULL; }

/* Copies s without surrounding blanks (some drivers pad their names; the parser trims values). */
static void copy_trimmed(char *dst, size_t cap, const char *s)
{
    const char *e = s + strlen(s);
    trim(&s, &e);
    size_t n = (size_t)(e - s) < cap - 1 ? (size_t)(e - s) : cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

const cldp_tuning_entry *cldp_tuning_match(const cldp_tuning_file *f, const char *device_name, const char *driver_version,
                                           const char *device_version, int *score)
{
    const cldp_tuning_entry *best = NULL;
    int best_score = -1;
    char name[256], driver[128], version[256];
    if (device_name) copy_trimmed(name, sizeof name, device_name);
    if (driver_version) copy_trimmed(driver, sizeof driver, driver_version);
    if (device_version) copy_trimmed(version, sizeof version, device_version);
    if (f && device_name && driver_version && device_version)
        for (size_t i = 0; i < f->count; i++) {
            const cldp_tuning_entry *e = &f->entries[i];
            if (!cldp_tuning_pattern_match(e->device, name) || !cldp_tuning_pattern_match(e->driver, driver) ||
                !cldp_tuning_pattern_match(e->version, version))
                continue;
            int s = (is_pattern(e->device) ? 0 : 4) + (is_pattern(e->driver) ? 0 : 2) + (is_pattern(e->version) ? 0 : 1);
            if (s > best_score) {
                best = e;
                best_score = s;
            }
        }
    if (score) *score = best_score;
    return best;
}

int cldp_tuning_kernel_needs(const cldp_tuning_kernel *k, size_t *wg, size_t *local_bytes)
{
    if (!find_known(k->name)) return 0;
    kernel_rules(k, wg, local_bytes);
    return 1;
}
