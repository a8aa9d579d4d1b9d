// Kernels of the GPU warm tier, compiled with NVRTC when the engine starts.
//
// Columns live on the device as plain arrays, one per schema column:
// timestamp (i64), symbol (u32 dictionary code), price (f64), volume (f64),
// and in trading mode side (u32 code), exchange (u32 code), trade_id (i64),
// flags (i32). A query's filters arrive as a small predicate program
// (`Pred` below); `ssig_filter` evaluates it per row into a 0/1 mask.

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

// Predicate operations.
#define OP_INT_RANGE 0   // ilo <= v <= ihi (timestamps, trade ids, flags)
#define OP_INT_SET 1     // v in i64 set [set_off, set_off + set_len)
#define OP_FLOAT_RANGE 2 // bounds flo / fhi, each absent, inclusive or exclusive
#define OP_FLOAT_SET 3   // v == one of the f64 set (NaN never matches)
#define OP_CODE_MASK 4   // codes[v] != 0 (u8 per dictionary code, from set_off)

// Bound kinds of OP_FLOAT_RANGE.
#define B_NONE 0
#define B_INCL 1
#define B_EXCL 2

struct Pred {
    int column;
    int op;
    i64 ilo;
    i64 ihi;
    double flo;
    double fhi;
    int lo_kind;
    int hi_kind;
    int set_off;
    int set_len;
};

struct Columns {
    const i64* ts;
    const u32* symbol;
    const double* price;
    const double* volume;
    const u32* side;
    const u32* exchange;
    const i64* trade_id;
    const int* flags;
};

__device__ __forceinline__ bool int_value(const Columns& c, int column, u64 row, i64* v) {
    switch (column) {
        case 0: *v = c.ts[row]; return true;
        case 6: *v = c.trade_id[row]; return true;
        case 7: *v = (i64)c.flags[row]; return true;
        default: return false;
    }
}

__device__ __forceinline__ u32 code_value(const Columns& c, int column, u64 row) {
    switch (column) {
        case 1: return c.symbol[row];
        case 4: return c.side[row];
        default: return c.exchange[row];
    }
}

__device__ bool eval(const Pred& p, const Columns& c, u64 row,
                     const i64* iset, const double* fset, const u8* codes) {
    if (p.op == OP_INT_RANGE || p.op == OP_INT_SET) {
        i64 v;
        if (!int_value(c, p.column, row, &v)) return false;
        if (p.op == OP_INT_RANGE) return p.ilo <= v && v <= p.ihi;
        // The set is sorted: binary search.
        int lo = p.set_off, hi = p.set_off + p.set_len;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (iset[mid] < v) lo = mid + 1; else hi = mid;
        }
        return lo < p.set_off + p.set_len && iset[lo] == v;
    }
    if (p.op == OP_FLOAT_RANGE || p.op == OP_FLOAT_SET) {
        double v = p.column == 2 ? c.price[row] : c.volume[row];
        if (p.op == OP_FLOAT_SET) {
            for (int i = p.set_off; i < p.set_off + p.set_len; i++) {
                if (fset[i] == v) return true;
            }
            return false;
        }
        bool lo_ok = p.lo_kind == B_NONE || (p.lo_kind == B_INCL ? v >= p.flo : v > p.flo);
        bool hi_ok = p.hi_kind == B_NONE || (p.hi_kind == B_INCL ? v <= p.fhi : v < p.fhi);
        return lo_ok && hi_ok;
    }
    u32 code = code_value(c, p.column, row);
    return code < (u32)p.set_len && codes[p.set_off + code] != 0;
}

// mask[row] = 1 when every predicate holds.
extern "C" __global__ void ssig_filter(Columns c, u64 n, const Pred* preds, int npreds,
                                       const i64* iset, const double* fset, const u8* codes,
                                       u8* mask) {
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < n;
         row += (u64)gridDim.x * blockDim.x) {
        bool keep = true;
        for (int i = 0; i < npreds && keep; i++) {
            keep = eval(preds[i], c, row, iset, fset, codes);
        }
        mask[row] = keep ? 1 : 0;
    }
}

// Rows of a timestamp column in [lo, hi], summed into *out (the benchmark of
// a range filter + count over resident columns).
extern "C" __global__ void ssig_count_range(const i64* ts, u64 n, i64 lo, i64 hi, u64* out) {
    u64 count = 0;
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < n;
         row += (u64)gridDim.x * blockDim.x) {
        i64 v = ts[row];
        count += (lo <= v && v <= hi) ? 1 : 0;
    }
    for (int offset = 16; offset > 0; offset /= 2) {
        count += __shfl_down_sync(0xffffffffu, count, offset);
    }
    if ((threadIdx.x & 31) == 0 && count != 0) {
        atomicAdd(out, count);
    }
}

// out[i] = column[rows[i]]: only the matching rows come back to the host.
extern "C" __global__ void ssig_gather_64(const u64* column, const u32* rows, u64 n, u64* out) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        out[i] = column[rows[i]];
    }
}

extern "C" __global__ void ssig_gather_32(const u32* column, const u32* rows, u64 n, u32* out) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        out[i] = column[rows[i]];
    }
}

// ---- Aggregates per (time bucket, symbol) ----------------------------------
//
// Each group has ACC_STRIDE u64 cells in `acc` (layout below). Every cell is
// updated with integer atomics, so a group's cells do not depend on the
// order in which threads visit its rows: counts and sums of integers
// commute, min and max too. Floating-point values enter as order-preserving
// keys (min/max) and as exact fixed-point digits (sums; see agg.rs,
// `ExactSum`, which adds the very same pieces on the CPU).

#define LIMBS 68
#define A_COUNT 0
#define A_TS_MIN 1   // timestamp ^ 2^63: unsigned order is signed order
#define A_TS_MAX 2
#define A_OPEN 3     // smallest total key of the price at A_TS_MIN
#define A_CLOSE 4    // largest total key of the price at A_TS_MAX
#define A_PMIN 5     // total keys of non-NaN prices and volumes
#define A_PMAX 6
#define A_VMIN 7
#define A_VMAX 8
#define A_PSPEC 9    // price: NaN, +inf, -inf counts
#define A_VSPEC 12   // volume: the same
#define A_PSUM 15    // price: LIMBS digits
#define A_VSUM (A_PSUM + LIMBS)
#define ACC_STRIDE (A_VSUM + LIMBS)
#define NO_SLOT 0xffffffffu

// f64::total_cmp order as an unsigned key.
__device__ __forceinline__ u64 total_key(double v) {
    u64 b = (u64)__double_as_longlong(v);
    return (b >> 63) ? ~b : (b | (1ull << 63));
}

// Adds v exactly: three 32-bit pieces of m << (p % 32) into digits p / 32...
__device__ void exact_add(u64* digits, u64* specials, double v) {
    u64 bits = (u64)__double_as_longlong(v);
    u32 exp = (u32)((bits >> 52) & 0x7ff);
    u64 frac = bits & ((1ull << 52) - 1);
    bool neg = (bits >> 63) != 0;
    if (exp == 0x7ff) {
        atomicAdd((unsigned long long*)&specials[frac != 0 ? 0 : (neg ? 2 : 1)], 1ull);
        return;
    }
    u64 m = exp == 0 ? frac : (frac | (1ull << 52));
    if (m == 0) return;
    u32 p = exp == 0 ? 0 : exp - 1;
    u32 d = p / 32, s = p % 32;
    u64 lo = m << s;
    long long piece[3];
    piece[0] = (long long)(lo & 0xffffffffull);
    piece[1] = (long long)(lo >> 32);
    piece[2] = s == 0 ? 0 : (long long)(m >> (64 - s));
    for (int j = 0; j < 3; j++) {
        if (piece[j] != 0) {
            long long x = neg ? -piece[j] : piece[j];
            atomicAdd((unsigned long long*)&digits[d + j], (unsigned long long)x);
        }
    }
}

// Sets every group's cells to their empty values.
extern "C" __global__ void ssig_agg_init(u64* acc, u64 groups) {
    u64 n = groups * ACC_STRIDE;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n;
         i += (u64)gridDim.x * blockDim.x) {
        u64 k = i % ACC_STRIDE;
        bool min_cell = k == A_TS_MIN || k == A_OPEN || k == A_PMIN || k == A_VMIN;
        acc[i] = min_cell ? ~0ull : 0ull;
    }
}

// The group of a selected row, or -1: slot[symbol code] (NO_SLOT when the
// symbol is not asked for), bucket (ts - start) / every below nbuckets.
__device__ __forceinline__ long long group_of(const u8* mask, const i64* ts, const u32* sym,
                                              u64 row, const u32* slot, u32 nslot_codes,
                                              i64 start, i64 every, u64 nbuckets, u32 nslots) {
    if (!mask[row]) return -1;
    u32 code = sym[row];
    if (code >= nslot_codes) return -1;
    u32 s = slot[code];
    if (s == NO_SLOT) return -1;
    i64 t = ts[row];
    if (t < start) return -1;
    u64 b = ((u64)t - (u64)start) / (u64)every;
    if (b >= nbuckets) return -1;
    return (long long)(b * nslots + s);
}

// Pass 1: count, first/last time, min/max, exact sums.
extern "C" __global__ void ssig_agg_rows(const u8* mask, const i64* ts, const u32* sym,
                                         const double* price, const double* volume, u64 n,
                                         const u32* slot, u32 nslot_codes, i64 start, i64 every,
                                         u64 nbuckets, u32 nslots, u64* acc) {
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < n;
         row += (u64)gridDim.x * blockDim.x) {
        long long g = group_of(mask, ts, sym, row, slot, nslot_codes, start, every, nbuckets, nslots);
        if (g < 0) continue;
        u64* a = acc + (u64)g * ACC_STRIDE;
        unsigned long long tk = (unsigned long long)ts[row] ^ (1ull << 63);
        atomicAdd((unsigned long long*)&a[A_COUNT], 1ull);
        atomicMin((unsigned long long*)&a[A_TS_MIN], tk);
        atomicMax((unsigned long long*)&a[A_TS_MAX], tk);
        double p = price[row], v = volume[row];
        if (!isnan(p)) {
            atomicMin((unsigned long long*)&a[A_PMIN], (unsigned long long)total_key(p));
            atomicMax((unsigned long long*)&a[A_PMAX], (unsigned long long)total_key(p));
        }
        if (!isnan(v)) {
            atomicMin((unsigned long long*)&a[A_VMIN], (unsigned long long)total_key(v));
            atomicMax((unsigned long long*)&a[A_VMAX], (unsigned long long)total_key(v));
        }
        exact_add(a + A_PSUM, a + A_PSPEC, p);
        exact_add(a + A_VSUM, a + A_VSPEC, v);
    }
}

// Pass 2 (after pass 1 has finished): the open and close prices, at the
// first and last timestamp of the group, ties broken by the price's order.
extern "C" __global__ void ssig_agg_ends(const u8* mask, const i64* ts, const u32* sym,
                                         const double* price, u64 n, const u32* slot,
                                         u32 nslot_codes, i64 start, i64 every, u64 nbuckets,
                                         u32 nslots, u64* acc) {
    for (u64 row = blockIdx.x * (u64)blockDim.x + threadIdx.x; row < n;
         row += (u64)gridDim.x * blockDim.x) {
        long long g = group_of(mask, ts, sym, row, slot, nslot_codes, start, every, nbuckets, nslots);
        if (g < 0) continue;
        u64* a = acc + (u64)g * ACC_STRIDE;
        u64 tk = (u64)ts[row] ^ (1ull << 63);
        unsigned long long pk = (unsigned long long)total_key(price[row]);
        if (tk == a[A_TS_MIN]) atomicMin((unsigned long long*)&a[A_OPEN], pk);
        if (tk == a[A_TS_MAX]) atomicMax((unsigned long long*)&a[A_CLOSE], pk);
    }
}
