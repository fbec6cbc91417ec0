//! Which kernel function to attach to, and how to read its arguments and
//! return value, decided from the running kernel's BTF.
//!
//! `do_unlinkat` up to 7.1; `filename_unlinkat` from 7.2. Its return type
//! is `long` on 5.10 and `int` from 5.15: the width comes from the BTF
//! prototype, never from a version table.

use thiserror::Error;

use crate::btf::{Btf, CType, FuncProto};

/// Functions tried in order when no `--symbol` is given.
pub const CANDIDATES: &[&str] = &["do_unlinkat", "filename_unlinkat"];

/// Where the kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The resolved attach target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub symbol: String,
    pub proto: FuncProto,
    /// The function returns a 32-bit int: the return register is sign-extended from 32 bits.
    pub ret_is_int: bool,
    /// Parameter index of `dfd`, if the function has one.
    pub dfd_arg: Option<u32>,
    /// Parameter index of the `struct filename *`.
    pub name_arg: u32,
    pub nr_args: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TargetError {
    #[error(
        "no unlink function to attach to: tried {}; unlink functions in the kernel's BTF: {}",
        tried.join(", "),
        if found.is_empty() { "none".to_string() } else { found.join(", ") }
    )]
    NoCandidate {
        tried: Vec<String>,
        found: Vec<String>,
    },
    #[error("{symbol}: not a function in the kernel's BTF; unlink functions there: {}",
        if found.is_empty() { "none".to_string() } else { found.join(", ") })]
    UnknownSymbol { symbol: String, found: Vec<String> },
    #[error("{symbol}: unsupported prototype `{proto}`: {why}")]
    Unsupported {
        symbol: String,
        proto: String,
        why: &'static str,
    },
}

/// Picks the function: `requested` if given, else the first of [`CANDIDATES`] the BTF has.
pub fn resolve(btf: &Btf, requested: Option<&str>) -> Result<Target, TargetError> {
    // The unlink functions the kernel has are listed only for an error:
    // the list walks every function of the BTF (a tenth of a second of a
    // tracer's start under emulation).
    let found = || btf.funcs_containing("unlinkat");
    let symbol = match requested {
        Some(sym) if btf.has_func(sym) => sym.to_string(),
        Some(sym) => {
            return Err(TargetError::UnknownSymbol {
                symbol: sym.to_string(),
                found: found(),
            })
        }
        None => match CANDIDATES.iter().find(|c| btf.has_func(c)) {
            Some(c) => c.to_string(),
            None => {
                return Err(TargetError::NoCandidate {
                    tried: CANDIDATES.iter().map(|s| s.to_string()).collect(),
                    found: found(),
                })
            }
        },
    };
    let proto = btf
        .func_proto(&symbol)
        .ok_or_else(|| TargetError::Unsupported {
            symbol: symbol.clone(),
            proto: "?".into(),
            why: "no FUNC_PROTO in BTF",
        })?;
    from_proto(&symbol, proto)
}

/// Derives the argument positions and return width from a prototype.
pub fn from_proto(symbol: &str, proto: FuncProto) -> Result<Target, TargetError> {
    let unsupported = |why| TargetError::Unsupported {
        symbol: symbol.to_string(),
        proto: proto.to_string(),
        why,
    };
    let ret_is_int = match proto.ret {
        CType::Int { bytes: 4, .. } => true,
        CType::Int { bytes: 8, .. } => false,
        _ => {
            return Err(unsupported(
                "the return type is not a 32- or 64-bit integer",
            ))
        }
    };
    let name_arg = proto
        .params
        .iter()
        .position(|p| p.ty == CType::StructPtr("filename".into()))
        .ok_or_else(|| unsupported("no `struct filename *` parameter"))?;
    let dfd_arg = proto
        .params
        .iter()
        .position(|p| p.name == "dfd" && matches!(p.ty, CType::Int { .. }));
    let nr_args = proto.params.len();
    if nr_args > 4 {
        return Err(unsupported("more than 4 parameters"));
    }
    Ok(Target {
        symbol: symbol.to_string(),
        ret_is_int,
        dfd_arg: dfd_arg.map(|i| i as u32),
        name_arg: name_arg as u32,
        nr_args: nr_args as u32,
        proto,
    })
}

/// Reads the running kernel's BTF and resolves the target.
pub fn resolve_running(requested: Option<&str>) -> anyhow::Result<Target> {
    use anyhow::Context;
    let path = std::path::Path::new(VMLINUX_BTF);
    anyhow::ensure!(
        path.exists(),
        "no {VMLINUX_BTF}: the kernel needs CONFIG_DEBUG_INFO_BTF"
    );
    let btf = Btf::from_path(path).context("reading the kernel's BTF")?;
    Ok(resolve(&btf, requested)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::Param;

    fn proto(ret: CType, params: &[(&str, CType)]) -> FuncProto {
        FuncProto {
            ret,
            params: params
                .iter()
                .map(|(n, t)| Param {
                    name: n.to_string(),
                    ty: t.clone(),
                })
                .collect(),
        }
    }

    const INT: CType = CType::Int {
        bytes: 4,
        signed: true,
    };
    const LONG: CType = CType::Int {
        bytes: 8,
        signed: true,
    };

    fn fname() -> CType {
        CType::StructPtr("filename".into())
    }

    #[test]
    fn prototypes_seen_across_kernels() {
        // (prototype, ret_is_int, dfd_arg, name_arg, nr_args)
        let cases = [
            // 5.10: long do_unlinkat(int dfd, struct filename *name)
            (
                proto(LONG, &[("dfd", INT), ("name", fname())]),
                false,
                Some(0),
                1,
                2,
            ),
            // 5.15..7.1: int do_unlinkat(int dfd, struct filename *name)
            (
                proto(INT, &[("dfd", INT), ("name", fname())]),
                true,
                Some(0),
                1,
                2,
            ),
            // a future shape: name first, flags, no dfd
            (
                proto(INT, &[("name", fname()), ("flags", INT)]),
                true,
                None,
                0,
                2,
            ),
        ];
        for (p, ret_is_int, dfd, name, nr) in cases {
            let shown = p.to_string();
            let t = from_proto("f", p).unwrap();
            assert_eq!(
                (t.ret_is_int, t.dfd_arg, t.name_arg, t.nr_args),
                (ret_is_int, dfd, name, nr),
                "{shown}"
            );
        }
    }

    #[test]
    fn unsupported_prototypes_say_why() {
        let cases = [
            (
                proto(CType::Void, &[("name", fname())]),
                "not a 32- or 64-bit integer",
            ),
            (
                proto(INT, &[("dfd", INT), ("p", CType::Ptr)]),
                "no `struct filename *`",
            ),
        ];
        for (p, why) in cases {
            let err = from_proto("f", p).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
