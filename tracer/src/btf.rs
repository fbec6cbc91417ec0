//! A small reader of raw BTF (`/sys/kernel/btf/vmlinux`): just enough to
//! find a function's prototype and the width of its return type.
//!
//! Pure: it takes bytes and returns typed answers, so it is tested with
//! hand-built BTF blobs and, where the host has one, the host's own BTF.

use std::collections::HashMap;

use thiserror::Error;

const BTF_MAGIC: u16 = 0xeb9f;

/// BTF type kinds (include/uapi/linux/btf.h).
mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("not BTF: bad magic {0:#06x}")]
    BadMagic(u16),
    #[error("BTF is truncated at byte {0}")]
    Truncated(usize),
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind { id: u32, kind: u32 },
}

/// One entry of the type section, with the parts this reader uses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Type {
    name_off: u32,
    kind: u32,
    /// `size` for INT/STRUCT/UNION/ENUM, `type` for PTR/TYPEDEF/FUNC/FUNC_PROTO/...
    size_or_type: u32,
    /// INT: the encoding word; ARRAY: element type.
    extra: u32,
    /// FUNC_PROTO parameters: (name_off, type id).
    params: Vec<(u32, u32)>,
}

/// The parsed type and string sections.
#[derive(Debug)]
pub struct Btf {
    types: Vec<Type>, // index 0 is the implicit `void`
    strings: Vec<u8>,
    funcs: HashMap<String, u32>,
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

fn u16_at(b: &[u8], off: usize) -> Result<u16, BtfError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(BtfError::Truncated(off))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Truncated(off))
}

impl Btf {
    /// Parses a raw little-endian BTF blob (the format of `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let magic = u16_at(data, 0)?;
        if magic != BTF_MAGIC {
            return Err(BtfError::BadMagic(magic));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = hdr_len + u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = hdr_len + u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let strings = data
            .get(str_off..str_off + str_len)
            .ok_or(BtfError::Truncated(str_off + str_len))?
            .to_vec();
        let section = data
            .get(type_off..type_off + type_len)
            .ok_or(BtfError::Truncated(type_off + type_len))?;

        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            size_or_type: 0,
            extra: 0,
            params: Vec::new(),
        }];
        let mut pos = 0;
        while pos < section.len() {
            let id = types.len() as u32;
            let name_off = u32_at(section, pos)?;
            let info = u32_at(section, pos + 4)?;
            let size_or_type = u32_at(section, pos + 8)?;
            pos += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let mut extra = 0;
            let mut params = Vec::new();
            let trailer = match kind {
                kind::INT => {
                    extra = u32_at(section, pos)?;
                    4
                }
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => 0,
                kind::ARRAY => 12,
                kind::STRUCT | kind::UNION => 12 * vlen,
                kind::ENUM => 8 * vlen,
                kind::FUNC_PROTO => {
                    for i in 0..vlen {
                        let p = pos + 8 * i;
                        params.push((u32_at(section, p)?, u32_at(section, p + 4)?));
                    }
                    8 * vlen
                }
                kind::VAR | kind::DECL_TAG => 4,
                kind::DATASEC => 12 * vlen,
                kind::ENUM64 => 12 * vlen,
                other => return Err(BtfError::UnknownKind { id, kind: other }),
            };
            pos += trailer;
            if pos > section.len() {
                return Err(BtfError::Truncated(type_off + pos));
            }
            types.push(Type {
                name_off,
                kind,
                size_or_type,
                extra,
                params,
            });
        }

        let mut btf = Btf {
            types,
            strings,
            funcs: HashMap::new(),
        };
        let funcs = btf
            .types
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == kind::FUNC)
            .map(|(id, t)| (btf.name(t.name_off).to_string(), id as u32))
            .collect();
        btf.funcs = funcs;
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Whether the BTF has a function (BTF_KIND_FUNC) of this name.
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }

    /// Names of the functions whose name contains `needle`, sorted.
    pub fn funcs_containing(&self, needle: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .funcs
            .keys()
            .filter(|n| n.contains(needle))
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The prototype of the named function, if the BTF has it.
    pub fn func_proto(&self, name: &str) -> Option<FuncProto> {
        let func = self.types.get(*self.funcs.get(name)? as usize)?;
        let proto = self.types.get(func.size_or_type as usize)?;
        if proto.kind != kind::FUNC_PROTO {
            return None;
        }
        Some(FuncProto {
            ret: self.ctype(proto.size_or_type),
            params: proto
                .params
                .iter()
                .map(|&(name_off, ty)| Param {
                    name: self.name(name_off).to_string(),
                    ty: self.ctype(ty),
                })
                .collect(),
        })
    }

    /// Follows typedefs and qualifiers to the type that gives the layout.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..64 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Some(t),
            }
        }
        None
    }

    fn ctype(&self, id: u32) -> CType {
        if id == 0 {
            return CType::Void;
        }
        let Some(t) = self.resolve(id) else {
            return CType::Other(0);
        };
        match t.kind {
            kind::INT => CType::Int {
                bytes: t.size_or_type,
                signed: (t.extra >> 24) & 0x1 != 0,
            },
            kind::ENUM | kind::ENUM64 => CType::Int {
                bytes: t.size_or_type,
                signed: true,
            },
            kind::PTR => match self.resolve(t.size_or_type) {
                Some(target) if matches!(target.kind, kind::STRUCT | kind::FWD) => {
                    CType::StructPtr(self.name(target.name_off).to_string())
                }
                _ => CType::Ptr,
            },
            other => CType::Other(other),
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
            let btf = Btf::parse(&kernel_like(ret_ty)).unwrap();
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
        let btf = Btf::parse(&kernel_like(1)).unwrap();
        assert!(btf.has_func("do_unlinkat"));
        assert!(!btf.has_func("filename_unlinkat"));
        assert_eq!(btf.func_proto("nosuch"), None);
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
        assert_eq!(Btf::parse(&[0x9f]).unwrap_err(), BtfError::Truncated(0));
        assert_eq!(
            Btf::parse(&[0, 0, 1, 0]).unwrap_err(),
            BtfError::BadMagic(0)
        );
        for cut in [30, good.len() - 3] {
            assert!(Btf::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_kind = good.clone();
        bad_kind[24 + 7] = 31; // first type's kind byte
        assert!(matches!(
            Btf::parse(&bad_kind),
            Err(BtfError::UnknownKind { id: 1, kind: 31 })
        ));
    }

    #[test]
    fn display_reads_like_c() {
        let btf = Btf::parse(&kernel_like(2)).unwrap();
        assert_eq!(
            btf.func_proto("do_unlinkat").unwrap().to_string(),
            "s64 (s32, struct filename *)"
        );
    }
}
