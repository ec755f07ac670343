//! `docs/FORMAT.md` names every file of ours the code writes: each
//! envelope's magic and version, and each checkpoint kind's number and file
//! name. A new kind or magic without its documentation fails here.

use strata_broker::core::topic::META_TYPE;
use strata_broker::storage::checkpoint::{self, Kind};
use strata_broker::storage::envelope::FileType;
use strata_broker::storage::index::{OFFSET_INDEX_TYPE, TIME_INDEX_TYPE};
use strata_broker::storage::log::compact::SWAP_FILE;
use strata_broker::storage::producers::SNAPSHOT_TYPE;

fn format_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/FORMAT.md");
    std::fs::read_to_string(path).unwrap()
}

/// The section of FORMAT.md whose table holds `magic`, up to the next
/// `## ` heading.
fn section_with<'a>(doc: &'a str, magic: &str) -> &'a str {
    let at = doc
        .find(&format!("`\"{magic}\"`"))
        .unwrap_or_else(|| panic!("FORMAT.md never names the magic \"{magic}\""));
    let start = doc[..at].rfind("\n## ").unwrap_or(0);
    let end = doc[at..].find("\n## ").map_or(doc.len(), |e| at + e);
    &doc[start..end]
}

#[test]
fn every_magic_and_version_is_in_format_md() {
    let doc = format_md();
    let types: [FileType; 6] = [
        checkpoint::FILE_TYPE,
        META_TYPE,
        SNAPSHOT_TYPE,
        SWAP_FILE,
        OFFSET_INDEX_TYPE,
        TIME_INDEX_TYPE,
    ];
    for ty in types {
        let magic = std::str::from_utf8(&ty.magic).unwrap();
        let section = section_with(&doc, magic);
        assert!(
            section.contains(&format!("u16 = {}", ty.version)),
            "FORMAT.md's section on \"{magic}\" ({}) does not give version {}",
            ty.what,
            ty.version
        );
    }
}

#[test]
fn every_checkpoint_kind_is_in_format_md() {
    let doc = format_md();
    let section = section_with(&doc, "STCK");
    let kinds = section
        .lines()
        .find(|l| l.contains("kind u16"))
        .expect("the checkpoint table's kind row");
    for kind in Kind::ALL {
        let n = kind as u16;
        assert!(
            kinds.contains(&format!("{n} ")),
            "kind {n} ({kind:?}) is missing from the kind row: {kinds}"
        );
        let name = checkpoint::file_name(kind);
        assert!(
            doc.contains(&format!("`{name}`")),
            "FORMAT.md never names {name}"
        );
    }
}
