//! Choosing the compute device by name.

#[cfg(not(target_family = "wasm"))]
use burn::prelude::*;

#[cfg(not(target_family = "wasm"))]
use crate::error::{Error, Result};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Backend {
    /// Burn's multi-threaded CPU backend.
    Flex,
    /// A GPU through wgpu (Vulkan, Metal, DX12 natively; WebGPU in the browser).
    Wgpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
        }
    }

    /// Initialise the device (natively).
    #[cfg(not(target_family = "wasm"))]
    pub fn device(self) -> Result<Device> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Device::wgpu_options().init().map_err(|e| Error::Device {
                device: "wgpu".into(),
                reason: format!("{e}"),
            }),
            #[allow(unreachable_patterns)]
            other => Err(Error::Device {
                device: other.name().into(),
                reason: "this build was compiled without that backend's cargo feature".into(),
            }),
        }
    }
}
