//! The attachment policy of SPEC.md "Attachments": which parts of a mail
//! are files, and for each file the verdict of steps 1–4 in SPEC order
//! (enabled, size, extension, content). Step 5, the antivirus, needs a
//! socket: the caller runs [`crate::adapters::clamd`] on the files this
//! module accepts and records its outcome as [`Refusal::Infected`] or
//! [`Refusal::NotScanned`].
//!
//! TNEF (`winmail.dat`): the crates.io readers were tried on MimeKit's 19
//! TNEF streams. `tnef` 0.1.1 errors on 8 of them and silently drops the
//! attached files of 5 more (it skips any attachment lacking one of six
//! attributes); `ytnef` binds libytnef, a GPL-2.0 C library. Neither is
//! usable, so [`tnef`] reads them: [`file_parts`] replaces a TNEF part by
//! the files inside it (and its body, see [`Origin::TnefBody`]), each
//! gated like any other; one that does not decode stays one file, refused
//! as [`Refusal::Tnef`] with the reason. uuencoded files ([`uuencode`]),
//! pasted into a text body or sent as an `x-uuencode` part, are decoded
//! and gated the same way.

use crate::settings::{AttachmentSettings, Language};

pub mod archive;
mod filename;
mod parts;
pub mod roles;
mod sniff;
pub mod tnef;
pub mod uuencode;

pub use filename::{MAX_NAME_BYTES, extension_of, sanitize_filename};
use parts::is_tnef_labelled;
pub use parts::{FilePart, MAX_MESSAGE_DEPTH, Origin, body_cids, file_parts, is_encrypted};

use archive::{DANGEROUS_EXTENSIONS, ZipProblem, inspect_zip};
use sniff::{Facts, OLE_MAGIC, OleKind, TextVerdict};

/// The settings the policy reads.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub enabled: bool,
    pub max_size_bytes: u64,
    /// Lower case, no leading dot (as [`AttachmentSettings`] holds them).
    pub allowed_extensions: &'a [String],
}

impl<'a> From<&'a AttachmentSettings> for Policy<'a> {
    fn from(s: &'a AttachmentSettings) -> Self {
        Policy {
            enabled: s.enabled,
            max_size_bytes: s.max_size_bytes(),
            allowed_extensions: &s.allowed_extensions,
        }
    }
}

/// Why a file was refused. [`Refusal::code`] is the stable id for metrics
/// and JSON; [`Refusal::explain`] the sentence for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Disabled,
    /// The transfer encoding (base64, quoted-printable) is broken.
    Undecodable,
    TooLarge {
        size: u64,
        limit: u64,
    },
    ExtensionNotAllowed {
        extension: String,
    },
    NoExtension,
    ContentMismatch {
        extension: String,
        sniffed: String,
    },
    Executable {
        what: String,
    },
    ArchiveHoldsExecutable {
        entry: String,
    },
    /// Too many entries or too much expansion: a zip bomb, or close to one.
    ArchiveTooLarge,
    /// An archive we cannot look inside (encrypted, damaged, or a format
    /// other than zip).
    UnreadableArchive,
    /// A `winmail.dat` (TNEF) that could not be read: why.
    Tnef {
        why: String,
    },
    Infected {
        signature: String,
    },
    NotScanned {
        why: String,
    },
    /// The message carried more files than `attachments.max_files`.
    TooMany {
        limit: u32,
    },
}

impl Refusal {
    /// Step 5 of the policy, from the antivirus's answer: `None` for a
    /// clean file; a scanner that did not answer refuses (fail closed).
    pub fn from_scan(outcome: &crate::domain::ScanOutcome) -> Option<Refusal> {
        use crate::domain::ScanOutcome;
        match outcome {
            ScanOutcome::Clean => None,
            ScanOutcome::Infected(signature) => Some(Refusal::Infected {
                signature: signature.clone(),
            }),
            ScanOutcome::Failed(why) => Some(Refusal::NotScanned { why: why.clone() }),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Disabled => "disabled",
            Refusal::Undecodable => "undecodable",
            Refusal::TooLarge { .. } => "too_large",
            Refusal::ExtensionNotAllowed { .. } => "extension_not_allowed",
            Refusal::NoExtension => "no_extension",
            Refusal::ContentMismatch { .. } => "content_mismatch",
            Refusal::Executable { .. } => "executable",
            Refusal::ArchiveHoldsExecutable { .. } => "archive_holds_executable",
            Refusal::ArchiveTooLarge => "archive_too_large",
            Refusal::UnreadableArchive => "unreadable_archive",
            Refusal::Tnef { .. } => "tnef",
            Refusal::Infected { .. } => "infected",
            Refusal::NotScanned { .. } => "not_scanned",
            Refusal::TooMany { .. } => "too_many_files",
        }
    }

    /// One sentence for the sender, in the helpdesk's language. It does not
    /// name the file (the caller lists files) nor repeat the accepted
    /// types (the mail shows them once).
    pub fn explain(&self, lang: Language) -> String {
        let fr = lang == Language::Fr;
        match self {
            Refusal::TooMany { limit } => {
                if fr {
                    format!(
                        "Le message contenait plus de {limit} fichiers : les suivants n'ont pas été examinés."
                    )
                } else {
                    format!(
                        "The message carried more than {limit} files: the ones after those were not examined."
                    )
                }
            }
            Refusal::Disabled => {
                if fr {
                    "Ce support n'accepte pas de pièces jointes.".into()
                } else {
                    "This helpdesk does not accept attachments.".into()
                }
            }
            Refusal::Undecodable => {
                if fr {
                    "Le fichier est arrivé abîmé (encodage base64, quoted-printable ou uuencode invalide) et n'a pas pu être lu.".into()
                } else {
                    "The file arrived damaged (invalid base64, quoted-printable or uuencode encoding) and could not be read.".into()
                }
            }
            Refusal::TooLarge { size, limit } => {
                if fr {
                    format!(
                        "Le fichier fait {}, au-delà de la limite de {} par fichier.",
                        mib(*size, fr),
                        mib(*limit, fr)
                    )
                } else {
                    format!(
                        "The file is {}, over the limit of {} per file.",
                        mib(*size, fr),
                        mib(*limit, fr)
                    )
                }
            }
            Refusal::ExtensionNotAllowed { extension } => {
                if fr {
                    format!("Les fichiers .{extension} ne sont pas acceptés.")
                } else {
                    format!("Files of type .{extension} are not accepted.")
                }
            }
            Refusal::NoExtension => {
                if fr {
                    "Le nom du fichier n'a pas d'extension, son type ne peut donc pas être vérifié."
                        .into()
                } else {
                    "The file name has no extension, so its type cannot be checked.".into()
                }
            }
            Refusal::ContentMismatch { extension, sniffed } => {
                if fr {
                    format!(
                        "Le fichier porte l'extension .{extension} mais son contenu est d'un autre type ({sniffed})."
                    )
                } else {
                    format!(
                        "The file is named .{extension} but its content is something else ({sniffed})."
                    )
                }
            }
            Refusal::Executable { what } => {
                if fr {
                    format!(
                        "Le fichier est un programme ou un script ({what}) : ils ne sont jamais acceptés."
                    )
                } else {
                    format!("The file is a program or a script ({what}); these are never accepted.")
                }
            }
            Refusal::ArchiveHoldsExecutable { entry } => {
                if fr {
                    format!(
                        "L'archive contient un programme ou un script ({entry}) : ils ne sont jamais acceptés."
                    )
                } else {
                    format!(
                        "The archive holds a program or a script ({entry}); these are never accepted."
                    )
                }
            }
            Refusal::ArchiveTooLarge => {
                if fr {
                    "L'archive contient trop de fichiers ou se décompresse en une taille démesurée."
                        .into()
                } else {
                    "The archive holds too many files or expands to an unreasonable size.".into()
                }
            }
            Refusal::UnreadableArchive => {
                if fr {
                    "Le contenu de l'archive ne peut pas être vérifié (archive chiffrée, abîmée ou d'un format autre que zip).".into()
                } else {
                    "The archive's content cannot be checked (it is encrypted, damaged, or not a zip).".into()
                }
            }
            Refusal::Tnef { why } => {
                if fr {
                    format!(
                        "Outlook a envoyé ce fichier au format winmail.dat (TNEF), mais il est illisible ({why}) : renvoyez le message au format HTML ou texte brut."
                    )
                } else {
                    format!(
                        "Outlook sent this as winmail.dat (TNEF), but it cannot be read ({why}): please resend the message in HTML or plain text format."
                    )
                }
            }
            Refusal::Infected { signature } => {
                if fr {
                    format!("L'antivirus a détecté {signature} dans le fichier.")
                } else {
                    format!("The antivirus found {signature} in the file.")
                }
            }
            Refusal::NotScanned { .. } => {
                if fr {
                    "Le fichier n'a pas pu être analysé par l'antivirus ; renvoyez-le plus tard."
                        .into()
                } else {
                    "The file could not be scanned by the antivirus; please send it again later."
                        .into()
                }
            }
        }
    }
}

/// `5 MiB`, `7.3 MiB`, `512 KiB`; decimal comma in French.
fn mib(bytes: u64, fr: bool) -> String {
    const MIB: u64 = 1024 * 1024;
    let s = if bytes >= MIB {
        if bytes.is_multiple_of(MIB) {
            format!("{} Mio", bytes / MIB)
        } else {
            format!("{:.1} Mio", bytes as f64 / MIB as f64)
        }
    } else {
        format!("{} Kio", bytes.div_ceil(1024))
    };
    if fr {
        s.replace('.', ",")
    } else {
        s.replace("Mio", "MiB").replace("Kio", "KiB")
    }
}

/// The verdict on one file, and what the caller records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Sanitised: safe to show and to offer for download.
    pub filename: String,
    /// The extension judged: the last one of the name, lower case; for a
    /// part without a name, the one of its declared type.
    pub extension: Option<String>,
    /// Decoded size in bytes.
    pub size: u64,
    pub declared_type: String,
    /// What the bytes are, when we can tell.
    pub sniffed_type: Option<String>,
    /// `None`: accepted (subject to the antivirus).
    pub refusal: Option<Refusal>,
    /// An image of the message's body (`cid:`), not a file the customer
    /// attached: its refusal is never told to the customer.
    pub body_image: bool,
    /// The part's `Content-ID` (lower case, without `<>`) when it is a
    /// body image: the HTML shows it by `cid:`.
    pub content_id: Option<String>,
}

impl Checked {
    /// Refused, and the customer is to be told (a file they attached).
    pub fn refused_loudly(&self) -> bool {
        self.refusal.is_some() && !self.body_image
    }
}

/// A part of the message's body gated as a file, quietly: a body image
/// (see [`roles`]), which must be an image by its content, or the body a
/// `winmail.dat` carries ([`Origin::TnefBody`]), under the file policy.
pub fn check_body_part(policy: &Policy, part: &FilePart) -> Checked {
    let mut c = check(policy, part);
    c.body_image = true;
    c.content_id = part.content_id.clone();
    if part.origin == Origin::TnefBody {
        return c;
    }
    if c.refusal.is_none()
        && !c
            .sniffed_type
            .as_deref()
            .is_some_and(|t| t.starts_with("image/"))
    {
        c.refusal = Some(Refusal::ContentMismatch {
            extension: c.extension.clone().unwrap_or_default(),
            sniffed: c.sniffed_type.clone().unwrap_or_else(|| "unknown".into()),
        });
    }
    c
}

/// Steps 1–4 of SPEC "Attachments", in order; the first failing step is
/// the verdict. A TNEF part is refused right after the size step: its
/// `.dat` extension would otherwise give a misleading reason.
/// A file past the message's limit of `limit` files: named and sized, its
/// content never examined (a mail with 10,000 parts costs 10,000 names,
/// not 10,000 scans), refused as one too many.
pub fn refuse_as_too_many(part: &FilePart, limit: u32) -> Checked {
    let named = part.raw_name.as_deref().and_then(filename::clean_name);
    let (filename, extension) = match named {
        Some(name) => {
            let ext = extension_of(&name);
            (name, ext)
        }
        None => {
            let ext = extension_for_type(&part.declared_type);
            (
                filename::fallback_name(part.index, ext),
                ext.map(str::to_string),
            )
        }
    };
    Checked {
        filename,
        extension,
        size: part.bytes.len() as u64,
        declared_type: part.declared_type.clone(),
        sniffed_type: None,
        refusal: Some(Refusal::TooMany { limit }),
        body_image: false,
        content_id: None,
    }
}

pub fn check(policy: &Policy, part: &FilePart) -> Checked {
    let bytes: &[u8] = &part.bytes;
    let facts = Facts::new(bytes);
    let size = bytes.len() as u64;
    let too_large = size > policy.max_size_bytes;
    // A file past the limit is only glanced at (its start), never scanned.
    let sniffed_type = if too_large || part.malformed {
        sniff_head(bytes)
    } else {
        sniff_type(&facts)
    };
    let named = part.raw_name.as_deref().and_then(filename::clean_name);
    let (filename, extension) = match named {
        Some(name) => {
            let ext = extension_of(&name);
            (name, ext)
        }
        None => {
            let ext = extension_for_type(&part.declared_type)
                .or_else(|| sniffed_type.as_deref().and_then(extension_for_type));
            (
                filename::fallback_name(part.index, ext),
                ext.map(str::to_string),
            )
        }
    };
    let refusal = if !policy.enabled {
        Some(Refusal::Disabled)
    } else if part.malformed {
        Some(Refusal::Undecodable)
    } else if too_large {
        Some(Refusal::TooLarge {
            size,
            limit: policy.max_size_bytes,
        })
    } else if is_tnef(part, &filename) {
        Some(Refusal::Tnef {
            why: match tnef::decode(bytes) {
                Err(e) => e.to_string(),
                Ok(_) => format!("messages embedded more than {MAX_MESSAGE_DEPTH} deep"),
            },
        })
    } else {
        match &extension {
            None => Some(Refusal::NoExtension),
            Some(ext) if !policy.allowed_extensions.iter().any(|a| a == ext) => {
                Some(Refusal::ExtensionNotAllowed {
                    extension: ext.clone(),
                })
            }
            Some(ext) => content_refusal(ext, &facts, sniffed_type.as_deref()),
        }
    };
    Checked {
        filename,
        extension,
        size,
        declared_type: part.declared_type.clone(),
        sniffed_type,
        refusal,
        body_image: false,
        content_id: None,
    }
}

fn is_tnef(part: &FilePart, filename: &str) -> bool {
    is_tnef_labelled(part) || filename.eq_ignore_ascii_case("winmail.dat")
}

/// What the bytes are, as a MIME type: programs first (by our stricter
/// tests), OLE by its streams, then infer, then "is it text at all".
fn sniff_type(facts: &Facts) -> Option<String> {
    let bytes = facts.bytes;
    if let Some(what) = facts.program() {
        return Some(program_mime(what).to_string());
    }
    if bytes.starts_with(OLE_MAGIC) {
        return Some(facts.ole().mime().to_string());
    }
    if let Some(mime) = facts.infer().filter(|m| !is_weak_magic(m)) {
        return Some(mime.to_string());
    }
    if sniff::is_pdf(bytes) {
        return Some("application/pdf".into());
    }
    match facts.text() {
        TextVerdict::Text => Some("text/plain".into()),
        TextVerdict::Active(what) => Some(program_mime(what).to_string()),
        TextVerdict::Binary => None,
    }
}

/// The type of a file we will not read in full (too large, undecodable).
fn sniff_head(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    if head.starts_with(OLE_MAGIC) {
        return Some("application/x-ole-storage".into());
    }
    if let Some(what) = sniff::program(head) {
        return Some(program_mime(what).to_string());
    }
    infer::get(head)
        .filter(|t| !is_weak_magic(t.mime_type()))
        .map(|t| t.mime_type().to_string())
}

/// infer types whose magic is two or three printable bytes ("BC", "0\x82")
/// and so match ordinary text; never trusted over the text test.
fn is_weak_magic(mime: &str) -> bool {
    matches!(
        mime,
        "application/x-llvm" | "application/x-x509-ca-cert" | "application/vnd.android.dey"
    ) || mime.starts_with("text/")
}

fn program_mime(what: &str) -> &'static str {
    match what {
        "PE" => "application/vnd.microsoft.portable-executable",
        "ELF" => "application/x-executable",
        "Mach-O" => "application/x-mach-binary",
        "Java class" => "application/java",
        "DEX" => "application/vnd.android.dex",
        "WebAssembly" => "application/wasm",
        "LNK" => "application/x-ms-shortcut",
        "MSI" => "application/x-msi",
        "HTML" => "text/html",
        "batch script" => "application/x-bat",
        "server script (PHP/ASP)" => "application/x-httpd-php",
        _ => "text/x-shellscript",
    }
}

/// The extension a nameless part is judged by, from its declared (or
/// sniffed) type: mail clients leave inline images unnamed.
fn extension_for_type(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/bmp" => "bmp",
        "image/tiff" => "tiff",
        "image/heif" | "image/heic" => "heic",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/csv" => "csv",
        "text/calendar" => "ics",
        "text/html" => "html",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/zip" => "zip",
        "message/rfc822" => "eml",
        _ => return None,
    })
}

/// What an extension promises about the bytes.
enum Expect {
    /// Text, neither HTML nor script.
    Text,
    /// One of these infer MIME types.
    Mime(&'static [&'static str]),
    /// Any infer type of this top-level family (`video/`, `audio/`).
    Family(&'static str),
    Pdf,
    Rtf,
    Svg,
    /// Old Office; `.doc` also accepts RTF, which Word saves under it.
    Ole(fn(OleKind) -> bool, bool),
    /// OOXML: a zip with `[Content_Types].xml` and this top folder.
    Ooxml(&'static str),
    /// OpenDocument: infer's type for it (read from the `mimetype` entry).
    Odf(&'static str),
    Zip,
    /// An archive format we cannot list: never accepted.
    Opaque(&'static [&'static str]),
    /// Not known here: nothing to compare against.
    Unknown,
}

fn expectation(ext: &str) -> Expect {
    use Expect::*;
    match ext {
        "txt" | "text" | "log" | "csv" | "tsv" | "json" | "xml" | "sql" | "md" | "ini" | "cfg"
        | "conf" | "yaml" | "yml" | "ics" | "vcf" | "eml" | "diff" | "patch" => Text,
        "jpg" | "jpeg" | "jpe" | "jfif" => Mime(&["image/jpeg"]),
        "png" => Mime(&["image/png"]),
        "gif" => Mime(&["image/gif"]),
        "webp" => Mime(&["image/webp"]),
        "bmp" => Mime(&["image/bmp"]),
        "tif" | "tiff" => Mime(&["image/tiff"]),
        "heic" | "heif" => Mime(&["image/heif", "image/avif"]),
        "avif" => Mime(&["image/avif"]),
        "ico" => Mime(&["image/vnd.microsoft.icon"]),
        "psd" => Mime(&["image/vnd.adobe.photoshop"]),
        "mp3" | "wav" | "ogg" | "oga" | "flac" | "m4a" | "aac" | "opus" | "amr" => Family("audio/"),
        "mp4" | "m4v" | "mov" | "avi" | "mkv" | "webm" | "wmv" | "mpg" | "mpeg" | "3gp" => {
            Family("video/")
        }
        "pdf" => Pdf,
        "rtf" => Rtf,
        "svg" => Svg,
        "doc" | "dot" => Ole(|k| matches!(k, OleKind::Word { .. }), true),
        "xls" | "xlt" => Ole(|k| matches!(k, OleKind::Excel { .. }), false),
        "ppt" | "pps" | "pot" => Ole(|k| matches!(k, OleKind::PowerPoint { .. }), false),
        "docx" | "dotx" => Ooxml("word/"),
        "xlsx" | "xltx" => Ooxml("xl/"),
        "pptx" | "ppsx" | "potx" => Ooxml("ppt/"),
        "odt" => Odf("application/vnd.oasis.opendocument.text"),
        "ods" => Odf("application/vnd.oasis.opendocument.spreadsheet"),
        "odp" => Odf("application/vnd.oasis.opendocument.presentation"),
        "zip" => Zip,
        "rar" => Opaque(&["application/vnd.rar"]),
        "7z" => Opaque(&["application/x-7z-compressed"]),
        "gz" | "tgz" => Opaque(&["application/gzip"]),
        "bz2" => Opaque(&["application/x-bzip2"]),
        "xz" => Opaque(&["application/x-xz"]),
        "tar" => Opaque(&["application/x-tar"]),
        "zst" => Opaque(&["application/zstd"]),
        _ => Unknown,
    }
}

/// Step 4: do the bytes agree with the extension, and are they free of
/// programs and scripts?
fn content_refusal(ext: &str, facts: &Facts, sniffed: Option<&str>) -> Option<Refusal> {
    let bytes = facts.bytes;
    let mismatch = || Refusal::ContentMismatch {
        extension: ext.to_string(),
        sniffed: sniffed.unwrap_or("unrecognised binary data").to_string(),
    };
    if let Some(what) = facts.program() {
        return Some(Refusal::Executable {
            what: what.to_string(),
        });
    }
    // Allowed by the admin (with a warning at check time), still a program.
    if DANGEROUS_EXTENSIONS.contains(&ext) {
        return Some(Refusal::Executable {
            what: format!(".{ext}"),
        });
    }
    let infer_mime = || facts.infer();
    match expectation(ext) {
        Expect::Text => match facts.text() {
            TextVerdict::Text => None,
            TextVerdict::Binary => Some(mismatch()),
            TextVerdict::Active(what) => Some(Refusal::Executable {
                what: what.to_string(),
            }),
        },
        Expect::Mime(list) => (!infer_mime().is_some_and(|m| list.contains(&m))).then(mismatch),
        Expect::Family(prefix) => {
            (!infer_mime().is_some_and(|m| m.starts_with(prefix))).then(mismatch)
        }
        Expect::Pdf => (!sniff::is_pdf(bytes)).then(mismatch),
        Expect::Rtf => (!sniff::is_rtf(bytes)).then(mismatch),
        Expect::Svg => svg_refusal(facts).map(|r| r.unwrap_or_else(mismatch)),
        Expect::Ole(right_kind, rtf_ok) => {
            if rtf_ok && sniff::is_rtf(bytes) {
                return None;
            }
            match facts.ole() {
                OleKind::Word { macros: true }
                | OleKind::Excel { macros: true }
                | OleKind::PowerPoint { macros: true } => Some(Refusal::Executable {
                    what: "Office macros".into(),
                }),
                kind if right_kind(kind) => None,
                _ => Some(mismatch()),
            }
        }
        Expect::Ooxml(folder) => {
            if !bytes.starts_with(b"PK\x03\x04") {
                return Some(mismatch());
            }
            let found = inspect_zip(bytes);
            if let Some(problem) = found.problem {
                return Some(zip_refusal(problem, mismatch));
            }
            let is_ooxml = found.names.iter().any(|n| n == "[Content_Types].xml")
                && found.names.iter().any(|n| n.starts_with(folder));
            (!is_ooxml).then(|| Refusal::ContentMismatch {
                extension: ext.to_string(),
                sniffed: "application/zip".into(),
            })
        }
        Expect::Odf(mime) => {
            if infer_mime() != Some(mime) {
                return Some(mismatch());
            }
            inspect_zip(bytes).problem.map(|p| zip_refusal(p, mismatch))
        }
        Expect::Zip => {
            if !infer_mime().is_some_and(|m| {
                m == "application/zip"
                    || m.contains("opendocument")
                    || m.contains("openxmlformats")
                    || m == "application/epub+zip"
            }) {
                return Some(mismatch());
            }
            inspect_zip(bytes)
                .problem
                .map(|p| zip_refusal(p, || Refusal::UnreadableArchive))
        }
        Expect::Opaque(list) => Some(if infer_mime().is_some_and(|m| list.contains(&m)) {
            Refusal::UnreadableArchive
        } else {
            mismatch()
        }),
        Expect::Unknown => match facts.infer().filter(|m| !is_weak_magic(m)) {
            // A recognised type must be the one the extension names.
            Some(_) if !infer::is(bytes, ext) => Some(mismatch()),
            Some(_) => None,
            None => match facts.text() {
                TextVerdict::Active(what) => Some(Refusal::Executable {
                    what: what.to_string(),
                }),
                _ => None,
            },
        },
    }
}

fn zip_refusal(problem: ZipProblem, unreadable: impl FnOnce() -> Refusal) -> Refusal {
    match problem {
        ZipProblem::Holds { entry, what } if what == "Office macros" => Refusal::Executable {
            what: format!("{what}: {entry}"),
        },
        ZipProblem::Holds { entry, .. } => Refusal::ArchiveHoldsExecutable { entry },
        ZipProblem::TooLarge => Refusal::ArchiveTooLarge,
        ZipProblem::Unreadable(_) => unreadable(),
    }
}

/// SVG is XML that browsers run: accepted only as a drawing without
/// scripts, event handlers, `javascript:` links or foreign HTML.
/// `Some(None)`: not an SVG at all (the caller words the mismatch).
fn svg_refusal(facts: &Facts) -> Option<Option<Refusal>> {
    let bytes = facts.bytes;
    if facts.text() == TextVerdict::Binary
        || sniff::find_ci(&bytes[..bytes.len().min(4096)], b"<svg").is_none()
    {
        return Some(None);
    }
    let active = sniff::find_ci(bytes, b"<script").is_some()
        || sniff::find_ci(bytes, b"javascript:").is_some()
        || sniff::find_ci(bytes, b"<foreignobject").is_some()
        || has_event_handler(bytes);
    active.then(|| {
        Some(Refusal::Executable {
            what: "SVG with script".into(),
        })
    })
}

/// ` onload=`, `\tonclick =`... an `on*` attribute anywhere.
fn has_event_handler(bytes: &[u8]) -> bool {
    bytes.windows(3).enumerate().any(|(i, w)| {
        if !(w[0].is_ascii_whitespace() || w[0] == b'/') || !w[1..].eq_ignore_ascii_case(b"on") {
            return false;
        }
        let rest = &bytes[i + 3..];
        let letters = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        letters > 0
            && rest[letters..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|&b| b == b'=')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn policy(allowed: &[String]) -> Policy<'_> {
        Policy {
            enabled: true,
            max_size_bytes: 5 * 1024 * 1024,
            allowed_extensions: allowed,
        }
    }

    fn part(name: Option<&str>, declared: &str, bytes: &[u8]) -> FilePart<'static> {
        FilePart {
            index: 1,
            raw_name: name.map(str::to_string),
            declared_type: declared.to_string(),
            inline: false,
            bytes: Cow::Owned(bytes.to_vec()),
            malformed: false,
            content_id: None,
            origin: Origin::Mime,
        }
    }

    #[test]
    fn codes_are_distinct_and_explanations_differ_by_language() {
        let all = [
            Refusal::Disabled,
            Refusal::Undecodable,
            Refusal::TooLarge {
                size: 7 * 1024 * 1024 + 1,
                limit: 5 * 1024 * 1024,
            },
            Refusal::ExtensionNotAllowed {
                extension: "exe".into(),
            },
            Refusal::NoExtension,
            Refusal::ContentMismatch {
                extension: "jpg".into(),
                sniffed: "application/pdf".into(),
            },
            Refusal::Executable { what: "PE".into() },
            Refusal::ArchiveHoldsExecutable {
                entry: "a.js".into(),
            },
            Refusal::ArchiveTooLarge,
            Refusal::UnreadableArchive,
            Refusal::Tnef {
                why: "the TNEF stream holds no attribute".into(),
            },
            Refusal::Infected {
                signature: "Eicar-Test-Signature".into(),
            },
            Refusal::NotScanned {
                why: "timeout".into(),
            },
            Refusal::TooMany { limit: 20 },
        ];
        assert!(matches!(
            Refusal::from_scan(&crate::domain::ScanOutcome::Failed("x".into())),
            Some(Refusal::NotScanned { .. })
        ));
        let codes: std::collections::HashSet<_> = all.iter().map(Refusal::code).collect();
        assert_eq!(codes.len(), all.len());
        for r in &all {
            let (en, fr) = (r.explain(Language::En), r.explain(Language::Fr));
            assert_ne!(en, fr, "{r:?}");
            assert!(en.ends_with('.') && fr.ends_with('.'), "{r:?}: {en} / {fr}");
            assert!(r.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(
            all[2].explain(Language::En),
            "The file is 7.0 MiB, over the limit of 5 MiB per file."
        );
        assert_eq!(
            all[2].explain(Language::Fr),
            "Le fichier fait 7,0 Mio, au-delà de la limite de 5 Mio par fichier."
        );
    }

    #[test]
    fn steps_run_in_spec_order() {
        let allowed = vec!["jpg".to_string()];
        let exe = {
            let mut b = vec![0u8; 128];
            b[..2].copy_from_slice(b"MZ");
            b
        };
        let big_exe = [exe.clone(), vec![0u8; 6 * 1024 * 1024]].concat();
        // Disabled beats everything.
        let off = Policy {
            enabled: false,
            ..policy(&allowed)
        };
        assert_eq!(
            check(&off, &part(Some("a.exe"), "x/y", &big_exe)).refusal,
            Some(Refusal::Disabled)
        );
        // Size beats extension and content.
        let got = check(&policy(&allowed), &part(Some("a.exe"), "x/y", &big_exe));
        assert_eq!(got.refusal.as_ref().map(Refusal::code), Some("too_large"));
        assert_eq!(
            got.sniffed_type.as_deref(),
            Some("application/vnd.microsoft.portable-executable")
        );
        // Extension beats content.
        let got = check(&policy(&allowed), &part(Some("a.exe"), "x/y", &exe));
        assert_eq!(
            got.refusal,
            Some(Refusal::ExtensionNotAllowed {
                extension: "exe".into()
            })
        );
        // Content last.
        let got = check(&policy(&allowed), &part(Some("a.jpg"), "image/jpeg", &exe));
        assert_eq!(got.refusal, Some(Refusal::Executable { what: "PE".into() }));
    }

    #[test]
    fn nameless_parts_are_judged_by_their_declared_type() {
        let allowed = vec!["png".to_string()];
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
        let got = check(&policy(&allowed), &part(None, "image/png", png));
        assert_eq!(
            (got.filename.as_str(), got.extension.as_deref(), got.refusal),
            ("attachment-1.png", Some("png"), None)
        );
        let got = check(
            &policy(&allowed),
            &part(None, "application/x-unknown", b"\0\x01\x02"),
        );
        assert_eq!(got.refusal, Some(Refusal::NoExtension));
        assert_eq!(got.filename, "attachment-1");
    }

    #[test]
    fn svg_table() {
        let allowed = vec!["svg".to_string()];
        let cases: [(&[u8], Option<&str>); 5] = [
            (
                b"<svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>",
                None,
            ),
            (b"<?xml version='1.0'?><svg><rect/></svg>", None),
            (b"<svg onload='alert(1)'><rect/></svg>", Some("executable")),
            (b"<svg><a href='javascript:x()'/></svg>", Some("executable")),
            (b"just text", Some("content_mismatch")),
        ];
        for (bytes, want) in cases {
            let got = check(
                &policy(&allowed),
                &part(Some("x.svg"), "image/svg+xml", bytes),
            );
            assert_eq!(
                got.refusal.as_ref().map(Refusal::code),
                want,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}
