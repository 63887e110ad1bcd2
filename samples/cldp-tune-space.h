/* cldp-tune-space.h — what cldp-tune searches: the candidate CLBlast parameter sets, the local
 * search around the fastest, and the GEMM shapes (from a model or given by hand). Included by
 * cldp-tune.c alone. */

/* ---- candidate parameter sets ----------------------------------------------------------- */

static const char *const direct_names[] = {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD",
                                           "PADA", "PADB", "VWMD", "VWND", "WGD"};
static const char *const xgemm_names[] = {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
                                          "NDIMC", "NWG", "SA", "SB", "STRM", "STRN", "VWM", "VWN"};

typedef struct candidate {
    const char *label;
    const char *origin;
    size_t v[16]; /* values in the order of direct_names / xgemm_names */
} candidate;

/* XgemmDirect sets: CLBlast's generic default, then the best of a random sample that
 * clblast_tuner_xgemm_direct measured on PoCL 3.1 (x86-64 "haswell" target, one-core "basic"
 * device) at 256x256x256, and CLBlast's own default for Intel CPUs. */
static const candidate direct_candidates[] = {
    /*                                       KWID MDIMAD MDIMCD NDIMBD NDIMCD PADA PADB VWMD VWND WGD */
    {"D0", "CLBlast generic default", {2, 8, 8, 8, 8, 1, 1, 1, 1, 16}},
    {"D1", "tuner, PoCL x86-64", {16, 16, 8, 8, 16, 0, 0, 4, 2, 64}},
    {"D2", "tuner, PoCL x86-64", {16, 16, 8, 16, 16, 0, 1, 4, 1, 64}},
    {"D3", "tuner, PoCL x86-64", {2, 16, 8, 8, 16, 1, 1, 2, 1, 64}},
    {"D4", "tuner, PoCL x86-64", {2, 8, 8, 8, 16, 1, 1, 4, 2, 64}},
    {"D5", "tuner, PoCL x86-64", {16, 8, 16, 16, 8, 0, 1, 2, 1, 64}},
    {"D6", "tuner, PoCL x86-64", {16, 8, 16, 8, 8, 1, 1, 4, 4, 64}},
    {"D7", "tuner, PoCL x86-64", {16, 16, 16, 16, 8, 1, 0, 2, 1, 64}},
    {"D8", "tuner, PoCL x86-64", {2, 8, 8, 16, 16, 0, 0, 1, 2, 64}},
    {"D9", "tuner, PoCL x86-64", {16, 8, 16, 8, 16, 0, 1, 1, 2, 64}},
    {"D10", "tuner, PoCL x86-64", {16, 8, 8, 8, 16, 1, 1, 2, 2, 64}},
    {"D11", "tuner, PoCL x86-64", {2, 8, 8, 8, 8, 1, 1, 2, 2, 32}},
    {"D12", "CLBlast Intel CPU; built-in", {2, 8, 8, 8, 8, 1, 1, 4, 4, 32}},
};

/* Xgemm sets: CLBlast's generic default, the best of a random sample clblast_tuner_xgemm measured
 * on the same device at 256x256x256, neighbours of the best of them, and CLBlast's default for
 * Intel CPUs. (CLBlast's CPU entries with GEMMK=1 were tried too: on PoCL 3.1 with CLBlast 1.5.3
 * they leave C unwritten, which the check against the reference catches.) */
static const candidate xgemm_candidates[] = {
    /*                                       GEMMK KREG KWG KWI MDIMA MDIMC MWG NDIMB NDIMC NWG SA SB STRM STRN VWM VWN */
    {"X0", "CLBlast generic default", {0, 1, 32, 2, 8, 8, 32, 16, 16, 32, 1, 1, 0, 0, 4, 2}},
    {"X1", "tuner, PoCL x86-64", {0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 0, 0, 1, 1, 8, 4}},
    {"X2", "tuner, PoCL x86-64", {0, 1, 16, 2, 16, 16, 64, 16, 8, 128, 0, 0, 0, 0, 4, 8}},
    {"X3", "tuner, PoCL x86-64", {0, 1, 16, 2, 32, 8, 128, 8, 16, 32, 0, 0, 0, 0, 4, 1}},
    {"X4", "tuner, PoCL x86-64", {0, 1, 32, 2, 8, 8, 64, 16, 8, 128, 0, 1, 0, 0, 8, 4}},
    {"X5", "tuner, PoCL x86-64", {0, 1, 32, 2, 8, 16, 128, 8, 8, 32, 0, 1, 0, 1, 8, 4}},
    {"X6", "tuner, PoCL x86-64", {0, 1, 32, 2, 16, 8, 128, 32, 16, 64, 1, 1, 0, 0, 8, 2}},
    {"X7", "tuner, PoCL x86-64", {0, 1, 32, 2, 16, 8, 128, 8, 32, 128, 0, 0, 1, 0, 4, 1}},
    {"X8", "tuner, PoCL x86-64", {0, 1, 32, 2, 16, 8, 64, 16, 8, 128, 0, 0, 1, 0, 4, 8}},
    {"X9", "tuner, PoCL x86-64", {0, 1, 16, 2, 32, 32, 128, 16, 8, 64, 0, 0, 1, 1, 4, 4}},
    {"X10", "tuner, PoCL x86-64", {0, 1, 32, 2, 8, 8, 64, 16, 16, 64, 1, 1, 0, 0, 4, 1}},
    {"X11", "CLBlast Intel CPU default", {0, 1, 32, 2, 16, 16, 64, 8, 8, 64, 0, 0, 0, 0, 4, 4}},
    {"X12", "X1 with MWG=64", {0, 1, 16, 2, 8, 8, 64, 32, 16, 128, 0, 0, 1, 1, 8, 4}},
    {"X13", "X1 with NWG=64", {0, 1, 16, 2, 16, 8, 128, 16, 16, 64, 0, 0, 1, 1, 8, 4}},
    {"X14", "X1 with VWM=4", {0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 0, 0, 1, 1, 4, 4}},
    {"X15", "X1 with KWG=32", {0, 1, 32, 2, 16, 8, 128, 32, 16, 128, 0, 0, 1, 1, 8, 4}},
    {"X16", "X1 with SA=SB=1", {0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 1, 1, 1, 1, 8, 4}},
    {"X17", "X1 with STRM=STRN=0", {0, 1, 16, 2, 16, 8, 128, 32, 16, 128, 0, 0, 0, 0, 8, 4}},
    {"X18", "X12 with STRM=STRN=0", {0, 1, 16, 2, 8, 8, 64, 32, 16, 128, 0, 0, 0, 0, 8, 4}},
    {"X19", "X17 with KWG=32", {0, 1, 32, 2, 16, 8, 128, 32, 16, 128, 0, 0, 0, 0, 8, 4}},
    {"X20", "X18, KWG=32; built-in", {0, 1, 32, 2, 8, 8, 64, 32, 16, 128, 0, 0, 0, 0, 8, 4}},
    /* PoCL 3.1, "skylake-avx512" target: the best of clblast_tuner_xgemm's sample at 256x1024x1024
     * and its neighbours, then the same with local memory, the fastest there (tuning-builtin.txt) */
    {"X21", "tuner+search, avx512", {0, 1, 32, 2, 8, 8, 64, 8, 8, 128, 0, 0, 1, 0, 8, 16}},
    {"X22", "X21, KWG=64 SA=SB=1", {0, 1, 64, 2, 8, 8, 64, 8, 8, 128, 1, 1, 1, 0, 8, 16}},
};

#define NDIRECT (sizeof direct_candidates / sizeof *direct_candidates)
#define NXGEMM (sizeof xgemm_candidates / sizeof *xgemm_candidates)

/* ---- the local search (--search) ---------------------------------------------------------- */

static double uniform(void); /* below: deterministic, in [-1, 1) */

enum { GEMMK, KREG, KWG, KWI, MDIMA, MDIMC, MWG, NDIMB, NDIMC, NWG, SA, SB, STRM, STRN, VWM, VWN };

/* Values the search may give each Xgemm parameter (GEMMK=1 is left out: see above). */
static const size_t search_values[16][6] = {
    [GEMMK] = {0}, [KREG] = {1}, [KWG] = {16, 32, 64, 128}, [KWI] = {2, 8},
    [MDIMA] = {4, 8, 16, 32}, [MDIMC] = {4, 8, 16, 32}, [MWG] = {16, 32, 64, 128, 256},
    [NDIMB] = {4, 8, 16, 32}, [NDIMC] = {4, 8, 16, 32}, [NWG] = {16, 32, 64, 128, 256},
    [SA] = {0, 1}, [SB] = {0, 1}, [STRM] = {0, 1}, [STRN] = {0, 1}, [VWM] = {1, 2, 4, 8, 16}, [VWN] = {1, 2, 4, 8, 16},
};

/* CLBlast's constraints on how the work-items of a group load the A tile (a = 1) or the B tile. */
static int xgemm_loads_ok(const size_t *v, int a)
{
    size_t wg = v[MDIMC] * v[NDIMC], dim = a ? v[MDIMA] : v[NDIMB];
    return wg % dim == 0 && v[KWG] % (wg / dim) == 0 && (a ? v[MWG] % (dim * v[VWM]) : v[NWG] % (dim * v[VWN])) == 0;
}

/* CLBlast's constraints on an Xgemm set, the device's work-group and local-memory limits, and at
 * most 256 accumulators per work-item (more only spills on the devices tried). */
static int xgemm_valid(const size_t *v, size_t max_wg, size_t local_bytes)
{
    size_t wg = v[MDIMC] * v[NDIMC];
    if (!wg || v[KWG] % v[KWI] || v[MWG] % (v[MDIMC] * v[VWM]) || v[NWG] % (v[NDIMC] * v[VWN]) ||
        !xgemm_loads_ok(v, 1) || !xgemm_loads_ok(v, 0))
        return 0;
    size_t local = 4 * (v[SA] * v[KWG] * v[MWG] + v[SB] * v[KWG] * v[NWG]);
    return wg <= max_wg && local <= local_bytes && (v[MWG] / v[MDIMC]) * (v[NWG] / v[NDIMC]) <= 256;
}

/* A new valid set: `from` with one or two parameters changed (MDIMA and NDIMB, which only shape
 * how the tiles are loaded, are then adjusted to fit where needed).
 * Returns 0 when 200 tries found nothing new. */
static int xgemm_neighbour(const size_t *from, const candidate *seen, size_t nseen, size_t max_wg, size_t local_bytes,
                           size_t *out, char *what, size_t what_size)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        size_t v[16];
        memcpy(v, from, sizeof v);
        int changes = uniform() < -0.33 ? 2 : 1, n = 0; /* one in three changes two */
        what[0] = 0;
        for (int c = 0; c < changes; c++) {
            int p;
            size_t nv = 0;
            do p = (int)((uniform() + 1.0) * 8.0) % 16; /* uniform() is in [-1, 1) */
            while (search_values[p][1] == 0);
            while (nv < 6 && search_values[p][nv]) nv++;
            if (p == SA || p == SB || p == STRM || p == STRN) nv = 2; /* 0 ends the list above */
            v[p] = search_values[p][(size_t)((uniform() + 1.0) * 0.5 * (double)nv) % nv];
            if ((size_t)n < what_size) n += snprintf(what + n, what_size - (size_t)n, "%s%s=%zu", c ? " " : "", xgemm_names[p], v[p]);
        }
        for (size_t i = 0; i < 4 && !xgemm_loads_ok(v, 1); i++) v[MDIMA] = search_values[MDIMA][i];
        for (size_t i = 0; i < 4 && !xgemm_loads_ok(v, 0); i++) v[NDIMB] = search_values[NDIMB][i];
        if (!xgemm_valid(v, max_wg, local_bytes)) continue;
        int dup = 0;
        for (size_t i = 0; i < nseen && !dup; i++) dup = !memcmp(seen[i].v, v, sizeof v);
        if (dup) continue;
        memcpy(out, v, sizeof v);
        return 1;
    }
    return 0;
}

/* ---- shapes ------------------------------------------------------------------------------ */

typedef struct shape {
    size_t m, n, k;
    int ta, tb;          /* op(A), op(B) transposed; matrices are row-major as in the replica */
    const char *what;    /* which pass of the replica, or "" */
    double *ref;         /* (m, n) host reference */
    double *bound;       /* (m, n) error bound */
} shape;

static int add_shape(shape *s, size_t *n, size_t m, size_t nn, size_t k, int ta, int tb, const char *what)
{
    for (size_t i = 0; i < *n; i++)
        if (s[i].m == m && s[i].n == nn && s[i].k == k && s[i].ta == ta && s[i].tb == tb) return 0;
    if (*n == MAX_SHAPES) {
        fprintf(stderr, "cldp-tune: more than %d shapes\n", MAX_SHAPES);
        return -1;
    }
    shape sh = {m, nn, k, ta, tb, what, NULL, NULL};
    s[(*n)++] = sh;
    return 0;
}

/* The GEMMs of one forward and backward pass of a replica at `rows` rows (see runtime/replica.c). */
static int shapes_from_model(const size_t *sizes, size_t nsizes, size_t rows, shape *s, size_t *n)
{
    for (size_t l = 0; l + 1 < nsizes; l++) {
        size_t in = sizes[l], out = sizes[l + 1];
        if (add_shape(s, n, rows, out, in, 0, 1, "forward X·Wᵀ") != 0) return -1;
        if (add_shape(s, n, out, in, rows, 1, 0, "backward dW = dYᵀ·X") != 0) return -1;
        if (l > 0 && add_shape(s, n, rows, in, out, 0, 0, "backward dX = dY·W") != 0) return -1;
    }
    return 0;
}

static int parse_size(const char *s, char **end, size_t *out)
{
    errno = 0;
    unsigned long long v = strtoull(s, end, 10);
    if (errno || *end == s || v == 0 || v > MAX_DIM || *s == '-') return -1;
    *out = (size_t)v;
    return 0;
}

/* "MxNxK[:ab],..." with a, b each n or t. */
static int parse_shapes(const char *text, shape *s, size_t *n)
{
    const char *c = text;
    while (*c) {
        size_t d[3];
        char *e = (char *)c;
        for (int i = 0; i < 3; i++) {
            if (parse_size(c, &e, &d[i]) != 0) return -1;
            if (i < 2 && *e != 'x') return -1;
            c = i < 2 ? e + 1 : e;
        }
        int ta = 0, tb = 0;
        if (*c == ':') {
            if ((c[1] != 'n' && c[1] != 't') || (c[2] != 'n' && c[2] != 't')) return -1;
            ta = c[1] == 't';
            tb = c[2] == 't';
            c += 3;
        }
        if (*c && *c != ',') return -1;
        if (add_shape(s, n, d[0], d[1], d[2], ta, tb, "") != 0) return -1;
        if (*c == ',') c++;
    }
    return *n ? 0 : -1;
}

static int parse_list(const char *text, size_t *v, size_t cap, size_t *n)
{
    const char *c = text;
    *n = 0;
    while (*c) {
        char *e;
        if (*n == cap || parse_size(c, &e, &v[*n]) != 0) return -1;
        (*n)++;
        if (*e && *e != ',') return -1;
        c = *e ? e + 1 : e;
    }
    return *n >= 2 ? 0 : -1;
}
