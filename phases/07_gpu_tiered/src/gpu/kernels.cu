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
