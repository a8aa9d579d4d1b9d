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

mod warm;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream};

pub use warm::{self_test, GpuWarm};

/// The kernels' source, compiled at start.
pub const KERNELS: &str = include_str!("kernels.cu");

/// The kernels `KERNELS` defines.
pub const KERNEL_NAMES: [&str; 4] = [
    "ssig_filter",
    "ssig_count_range",
    "ssig_gather_64",
    "ssig_gather_32",
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
