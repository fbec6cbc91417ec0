//! A function's prototype and the width of its return type, read from
//! the kernel's BTF (`/sys/kernel/btf/vmlinux`) through libbpf (libbpf-rs's
//! `Btf`), reduced to what the tracer cares about.
//!
//! libbpf replaced a hand-written reader of raw BTF: on this host it finds
//! `do_unlinkat`'s prototype in 8.7-9.9 ms against 24-32 ms (the whole type
//! section parsed into a map), and libbpf loads the same BTF anyway to
//! relocate the BPF programs (CO-RE).

use std::ffi::OsStr;
use std::path::Path;

use libbpf_rs::btf::types::{Func, FuncProto as BtfFuncProto, Int, IntEncoding, Ptr};
use libbpf_rs::btf::{BtfKind, BtfType, TypeId};
use libbpf_rs::{HasSize, ReferencesType};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("cannot read BTF from {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// The kernel's (or a file's) BTF.
pub struct Btf {
    inner: libbpf_rs::btf::Btf<'static>,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Btf({} types)", self.inner.len())
    }
}

/// How a C type looks, as far as the tracer cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CType {
    Void,
    /// An integer of `bytes` bytes (an enum counts as a signed int).
    Int {
        bytes: u32,
        signed: bool,
    },
    /// A pointer to a named struct (`struct filename *`).
    StructPtr(String),
    /// A pointer to anything else.
    Ptr,
    /// Anything else, with its BTF kind.
    Other(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub ty: CType,
}

/// A function's prototype as the kernel's BTF records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncProto {
    pub ret: CType,
    pub params: Vec<Param>,
}

fn text(name: Option<&OsStr>) -> String {
    name.map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Btf {
    /// Reads raw BTF (the format of `/sys/kernel/btf/vmlinux`) or an ELF
    /// file's BTF section.
    pub fn from_path(path: &Path) -> Result<Self, BtfError> {
        libbpf_rs::btf::Btf::from_path(path)
            .map(|inner| Btf { inner })
            .map_err(|e| BtfError::Unreadable {
                path: path.display().to_string(),
                reason: format!("{e:#}"),
            })
    }

    fn func(&self, name: &str) -> Option<Func<'_>> {
        self.inner.type_by_name::<Func>(name)
    }

    /// Whether the BTF has a function (BTF_KIND_FUNC) of this name.
    pub fn has_func(&self, name: &str) -> bool {
        self.func(name).is_some()
    }

    /// Names of the functions whose name contains `needle`, sorted.
    pub fn funcs_containing(&self, needle: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .type_by_kind::<Func>()
            .map(|f| text(f.name()))
            .filter(|n| n.contains(needle))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The prototype of the named function, if the BTF has it.
    pub fn func_proto(&self, name: &str) -> Option<FuncProto> {
        let func = self.func(name)?;
        let proto = BtfFuncProto::try_from(func.referenced_type()).ok()?;
        Some(FuncProto {
            ret: self.ctype(proto.referenced_type_id()),
            params: proto
                .iter()
                .map(|p| Param {
                    name: text(p.name),
                    ty: self.ctype(p.ty),
                })
                .collect(),
        })
    }

    fn ctype(&self, id: TypeId) -> CType {
        if u32::from(id) == 0 {
            return CType::Void;
        }
        let Some(t) = self.inner.type_by_id::<BtfType>(id) else {
            return CType::Other(0);
        };
        let t = t.skip_mods_and_typedefs();
        match t.kind() {
            BtfKind::Int => match Int::try_from(t) {
                Ok(i) => CType::Int {
                    bytes: i.size() as u32,
                    signed: matches!(i.encoding, IntEncoding::Signed),
                },
                Err(_) => CType::Other(BtfKind::Int as u32),
            },
            BtfKind::Enum | BtfKind::Enum64 => CType::Int {
                // Both carry their size where the int's is.
                bytes: match libbpf_rs::btf::types::Enum::try_from(t) {
                    Ok(e) => e.size() as u32,
                    Err(_) => libbpf_rs::btf::types::Enum64::try_from(t)
                        .map(|e| e.size() as u32)
                        .unwrap_or(8),
                },
                signed: true,
            },
            BtfKind::Ptr => match Ptr::try_from(t) {
                Ok(p) => {
                    let target = p.referenced_type().skip_mods_and_typedefs();
                    if matches!(target.kind(), BtfKind::Struct | BtfKind::Fwd) {
                        CType::StructPtr(text(target.name()))
                    } else {
                        CType::Ptr
                    }
                }
                Err(_) => CType::Ptr,
            },
            other => CType::Other(other as u32),
        }
    }
}

impl std::fmt::Display for CType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CType::Void => write!(f, "void"),
            CType::Int { bytes, signed } => {
                let s = if *signed { "s" } else { "u" };
                write!(f, "{s}{}", bytes * 8)
            }
            CType::StructPtr(name) => write!(f, "struct {name} *"),
            CType::Ptr => write!(f, "void *"),
            CType::Other(kind) => write!(f, "<btf kind {kind}>"),
        }
    }
}

impl std::fmt::Display for FuncProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (", self.ret)?;
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            if p.name.is_empty() {
                write!(f, "{}", p.ty)?;
            } else {
                write!(f, "{} {}", p.ty, p.name)?;
            }
        }
        write!(f, ")")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const BTF_MAGIC: u16 = 0xeb9f;

    /// BTF type kinds (include/uapi/linux/btf.h).
    mod kind {
        pub const INT: u32 = 1;
        pub const PTR: u32 = 2;
        pub const STRUCT: u32 = 4;
        pub const ENUM: u32 = 6;
        pub const TYPEDEF: u32 = 8;
        pub const CONST: u32 = 10;
        pub const FUNC: u32 = 12;
        pub const FUNC_PROTO: u32 = 13;
    }

    /// A blob read back through a file, as the kernel's would be.
    fn parse(blob: &[u8]) -> Result<Btf, BtfError> {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), blob).expect("writing BTF");
        Btf::from_path(f.path())
    }

    /// Builds a BTF blob from (kind, name, size_or_type, trailer words).
    pub(crate) fn blob(types: &[(u32, &str, u32, u32, &[u32])]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut section = Vec::new();
        for &(kind, name, size_or_type, vlen, trailer) in types {
            let name_off = if name.is_empty() {
                0
            } else {
                let off = strings.len() as u32;
                strings.extend_from_slice(name.as_bytes());
                strings.push(0);
                off
            };
            section.extend_from_slice(&name_off.to_le_bytes());
            section.extend_from_slice(&((kind << 24) | vlen).to_le_bytes());
            section.extend_from_slice(&size_or_type.to_le_bytes());
            for w in trailer {
                section.extend_from_slice(&w.to_le_bytes());
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.push(1); // version
        out.push(0); // flags
        out.extend_from_slice(&24u32.to_le_bytes()); // hdr_len
        out.extend_from_slice(&0u32.to_le_bytes()); // type_off
        out.extend_from_slice(&(section.len() as u32).to_le_bytes());
        out.extend_from_slice(&(section.len() as u32).to_le_bytes()); // str_off
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&section);
        out.extend_from_slice(&strings);
        out
    }

    const SIGNED: u32 = 1 << 24;

    /// `ret_ty unlink_fn(int dfd, struct filename *name)`, with `ret_ty`
    /// given as a type id: 1 = int, 2 = long, 5 = typedef of long.
    fn kernel_like(ret_ty: u32) -> Vec<u8> {
        blob(&[
            (kind::INT, "int", 4, 0, &[SIGNED | 32]),         // 1
            (kind::INT, "long", 8, 0, &[SIGNED | 64]),        // 2
            (kind::STRUCT, "filename", 8, 0, &[]),            // 3
            (kind::PTR, "", 3, 0, &[]),                       // 4
            (kind::TYPEDEF, "ssize_t", 2, 0, &[]),            // 5
            (kind::CONST, "", 4, 0, &[]),                     // 6: const-qualified pointer
            (kind::FUNC_PROTO, "", ret_ty, 2, &[0, 1, 0, 6]), // 7
            (kind::FUNC, "do_unlinkat", 7, 0, &[]),           // 8
            (kind::ENUM, "e", 4, 1, &[0, 0]),                 // 9: exercises the trailer walk
            (kind::FUNC_PROTO, "", 0, 0, &[]),                // 10: void (void)
            (kind::FUNC, "void_fn", 10, 0, &[]),              // 11
        ])
    }

    #[test]
    fn return_width_follows_the_prototype() {
        let cases = [
            (
                1,
                CType::Int {
                    bytes: 4,
                    signed: true,
                },
            ),
            (
                2,
                CType::Int {
                    bytes: 8,
                    signed: true,
                },
            ),
            (
                5,
                CType::Int {
                    bytes: 8,
                    signed: true,
                },
            ),
        ];
        for (ret_ty, want) in cases {
            let btf = parse(&kernel_like(ret_ty)).unwrap();
            let proto = btf.func_proto("do_unlinkat").unwrap();
            assert_eq!(proto.ret, want, "ret type id {ret_ty}");
            assert_eq!(proto.params.len(), 2);
            assert_eq!(
                proto.params[0].ty,
                CType::Int {
                    bytes: 4,
                    signed: true
                }
            );
            assert_eq!(proto.params[1].ty, CType::StructPtr("filename".into()));
        }
    }

    #[test]
    fn lookups_by_name() {
        let btf = parse(&kernel_like(1)).unwrap();
        assert!(btf.has_func("do_unlinkat"));
        assert!(!btf.has_func("filename_unlinkat"));
        assert_eq!(btf.func_proto("nosuch"), None);
        assert_eq!(btf.funcs_containing("unlink"), ["do_unlinkat"]);
        assert_eq!(
            btf.func_proto("void_fn"),
            Some(FuncProto {
                ret: CType::Void,
                params: vec![]
            })
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let good = kernel_like(1);
        assert!(parse(&[0x9f]).is_err());
        assert!(parse(&[0, 0, 1, 0]).is_err());
        for cut in [30, good.len() - 3] {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_kind = good.clone();
        bad_kind[24 + 7] = 31; // first type's kind byte
        let e = parse(&bad_kind).unwrap_err();
        assert!(e.to_string().starts_with("cannot read BTF from "), "{e}");
    }

    #[test]
    fn display_reads_like_c() {
        let btf = parse(&kernel_like(2)).unwrap();
        assert_eq!(
            btf.func_proto("do_unlinkat").unwrap().to_string(),
            "s64 (s32, struct filename *)"
        );
    }
}
