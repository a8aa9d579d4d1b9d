//! The GPU under the warm tier: found at run time, never required.
//!
//! cudarc loads the CUDA driver and NVRTC libraries when first used, and
//! panics inside if they are missing, so [`probe`] asks first whether each
//! library can be loaded and turns every failure into a reason the program
//! prints ("CPU: no CUDA driver library found"). The kernels
//! (`kernels.cu`, beside this file) are compiled with NVRTC when the engine
//! starts.
//!
//! [`GpuWarm`] keeps the warm tier's columns in device memory: preallocated
//! arrays used as a ring (records are appended at the tail and migrated
//! from the head), with exact counts of live rows. A query's filters run on
//! the device as a predicate program; only a 1-byte mask per row, then the
//! matching rows of the projected columns, come back. Before the engine
//! uses a device it runs the same queries through [`GpuWarm`] and the CPU
//! tier on generated data and compares them bit for bit ([`self_test`]); a
//! device that disagrees is not used.

mod self_test;
mod warm;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream};

pub use self_test::self_test;
pub use warm::GpuWarm;

/// The kernels' source, compiled at start.
pub const KERNELS: &str = include_str!("kernels.cu");

/// The kernels `KERNELS` defines.
pub const KERNEL_NAMES: [&str; 7] = [
    "ssig_filter",
    "ssig_count_range",
    "ssig_gather_64",
    "ssig_gather_32",
    "ssig_agg_init",
    "ssig_agg_rows",
    "ssig_agg_ends",
];

/// A device with the kernels loaded.
pub struct Gpu {
    pub name: String,
    pub total_mem: usize,
    stream: Arc<CudaStream>,
    functions: HashMap<&'static str, CudaFunction>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("name", &self.name)
            .field("total_mem", &self.total_mem)
            .finish()
    }
}

impl Gpu {
    fn function(&self, name: &str) -> Result<&CudaFunction, String> {
        self.functions
            .get(name)
            .ok_or_else(|| format!("kernel {name} is not loaded"))
    }
}

/// Runs `f`, turning a panic inside cudarc into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{what}: the CUDA library failed (panic inside cudarc)"
        )),
    }
}

/// True when the CUDA driver library can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its known names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// True when the NVRTC library can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles [`KERNELS`] to PTX (needs NVRTC only, no device).
pub fn compile() -> Result<cudarc::nvrtc::Ptx, String> {
    if !nvrtc_present() {
        return Err("no NVRTC library found (libnvrtc), needed to compile the kernels".into());
    }
    guarded("compiling the kernels", || {
        cudarc::nvrtc::compile_ptx_with_opts(
            KERNELS,
            cudarc::nvrtc::CompileOptions {
                name: Some("kernels.cu".into()),
                ..Default::default()
            },
        )
        .map_err(|e| format!("compiling kernels.cu with NVRTC: {e}"))
    })
}

/// The first device, with the kernels compiled and loaded, or why not.
pub fn probe() -> Result<Gpu, String> {
    if !driver_present() {
        return Err("no CUDA driver library (libcuda) found".into());
    }
    let count = guarded("counting devices", || {
        CudaContext::device_count().map_err(|e| format!("counting CUDA devices: {e}"))
    })?;
    if count < 1 {
        return Err("the CUDA driver reports no device".into());
    }
    let ptx = compile()?;
    guarded("opening device 0", || {
        let ctx = CudaContext::new(0).map_err(|e| format!("opening CUDA device 0: {e}"))?;
        let name = ctx.name().map_err(|e| format!("naming device 0: {e}"))?;
        let total_mem = ctx
            .total_mem()
            .map_err(|e| format!("device memory of {name}: {e}"))?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| format!("loading the kernels on {name}: {e}"))?;
        let mut functions = HashMap::new();
        for k in KERNEL_NAMES {
            let f = module
                .load_function(k)
                .map_err(|e| format!("kernel {k} on {name}: {e}"))?;
            functions.insert(k, f);
        }
        let stream = ctx.default_stream();
        Ok(Gpu {
            name,
            total_mem,
            stream,
            functions,
        })
    })
}

/// True when two answers hold the same rows, bit for bit, in the same order.
pub fn same_rows(a: &[arrow_array::RecordBatch], b: &[arrow_array::RecordBatch]) -> bool {
    self_test::same("", a, b).is_ok()
}

/// Copy bandwidths of a device, in GB/s (1e9 bytes per second).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Bandwidth {
    /// Host to device from page-locked (pinned) memory.
    pub htod_pinned: f64,
    /// Host to device from ordinary (pageable) memory.
    pub htod_pageable: f64,
    /// Device to device: bytes copied per second.
    pub dtod_copy: f64,
    /// Device to device counted as memory traffic (each byte is read and
    /// written): twice `dtod_copy`, what a kernel reading memory competes with.
    pub dtod_traffic: f64,
    pub bytes: usize,
}

impl Gpu {
    /// Device memory (free, total) as the driver reports it.
    pub fn memory(&self) -> Result<(usize, usize), String> {
        self.stream
            .context()
            .mem_get_info()
            .map_err(|e| format!("device memory of {}: {e}", self.name))
    }

    /// Measures copy bandwidths with buffers of `bytes`, the median of
    /// `reps` timed copies each (timed on the device with events).
    pub fn bandwidth(&self, bytes: usize, reps: usize) -> Result<Bandwidth, String> {
        guarded("measuring bandwidth", || {
            let err = |e: cudarc::driver::DriverError| format!("measuring bandwidth: {e}");
            let n = (bytes / 8).max(1);
            let stream = &self.stream;
            let ctx = stream.context().clone();
            let mut a = stream.alloc_zeros::<u64>(n).map_err(err)?;
            let mut b = stream.alloc_zeros::<u64>(n).map_err(err)?;
            // SAFETY: filled before use.
            let mut pinned = unsafe { ctx.alloc_pinned::<u64>(n) }.map_err(err)?;
            for (i, x) in pinned.as_mut_slice().map_err(err)?.iter_mut().enumerate() {
                *x = i as u64;
            }
            let pageable: Vec<u64> = (0..n as u64).collect();
            let timing = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
            let time = |f: &mut dyn FnMut() -> Result<(), cudarc::driver::DriverError>| {
                let mut ms = Vec::new();
                f().map_err(err)?; // warm-up
                for _ in 0..reps.max(1) {
                    let t0 = stream.record_event(timing).map_err(err)?;
                    f().map_err(err)?;
                    let t1 = stream.record_event(timing).map_err(err)?;
                    ms.push(t0.elapsed_ms(&t1).map_err(err)? as f64);
                }
                ms.sort_by(f64::total_cmp);
                Ok::<f64, String>(ms[ms.len() / 2])
            };
            let gbs = |ms: f64| (n * 8) as f64 / (ms / 1e3) / 1e9;
            let htod_pinned = gbs(time(&mut || stream.memcpy_htod(&pinned, &mut a))?);
            let htod_pageable = gbs(time(&mut || stream.memcpy_htod(&pageable, &mut a))?);
            let dtod_copy = gbs(time(&mut || stream.memcpy_dtod(&a, &mut b))?);
            Ok(Bandwidth {
                htod_pinned,
                htod_pageable,
                dtod_copy,
                dtod_traffic: 2.0 * dtod_copy,
                bytes: n * 8,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Mode;

    #[test]
    fn where_a_gpu_exists_it_agrees_with_the_cpu_tier() {
        let gpu = match probe() {
            Ok(gpu) => Arc::new(gpu),
            Err(why) => {
                // Covered by the probe test below; nothing to compare with.
                eprintln!("no GPU here ({why}): CPU/GPU equivalence not run");
                return;
            }
        };
        for mode in [Mode::Simple, Mode::Trading] {
            if let Err(e) = self_test(&gpu, mode) {
                panic!("{} in {mode:?} mode: {e}", gpu.name);
            }
        }
    }

    #[test]
    fn the_self_test_passes_with_the_cpu_tier_in_the_device_slot() {
        // The self-test's own queries and aggregates find rows and agree on
        // the CPU, so a failure on a device is the device's.
        for mode in [Mode::Simple, Mode::Trading] {
            let mut twin = crate::store::warm::CpuWarm::new(mode);
            let (lo, hi, n) = self_test::compare_with_cpu(&mut twin, mode).unwrap();
            assert!(lo < hi && n > 0);
        }
    }

    #[test]
    fn the_device_aggregate_layout_matches_the_kernels() {
        assert!(KERNELS.contains(&format!("#define LIMBS {}", crate::agg::LIMBS)));
        assert_eq!(warm::ACC_STRIDE, 15 + 2 * crate::agg::LIMBS);
        assert!(KERNELS.contains("#define A_PSUM 15"));
    }

    #[test]
    fn without_a_driver_the_probe_says_why_instead_of_panicking() {
        match probe() {
            Ok(gpu) => assert!(!gpu.name.is_empty()),
            Err(why) => {
                assert!(!why.is_empty());
                if !driver_present() {
                    assert!(why.contains("libcuda"), "{why}");
                }
            }
        }
    }

    #[test]
    fn the_kernels_compile_where_nvrtc_is_found() {
        // CI installs NVRTC (scripts/nvrtc.sh) so that this compiles the
        // kernels there; without it the answer must be a clear reason.
        match compile() {
            Ok(ptx) => {
                let text = ptx.to_src();
                for k in KERNEL_NAMES {
                    assert!(text.contains(k), "{k} missing from the PTX");
                }
            }
            Err(why) => {
                assert!(!nvrtc_present(), "NVRTC is present but: {why}");
                assert!(why.contains("NVRTC"), "{why}");
            }
        }
    }
}
