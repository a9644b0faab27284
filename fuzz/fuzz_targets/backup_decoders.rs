//! The backup repository's decoders of bytes read from disk: tree blobs, content lists,
//! index files and pack headers. A repository on a shared disk or restored from elsewhere is
//! outside the process's trust.
//!
//! Properties, beyond "never panics":
//! - a tree that decodes re-encodes to bytes that decode to the same nodes;
//! - a content list that decodes re-encodes to the same bytes;
//! - an index that decodes re-encodes to an index that decodes to the same packs;
//! - every blob `scan_headers` finds lies inside the bytes it was given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_agent::backup::id::BlobId;
use muster_agent::backup::repo::{index, pack};
use muster_agent::backup::tree;

fuzz_target!(|data: &[u8]| {
    let id = BlobId([0; 32]);
    if let Ok(nodes) = tree::decode_nodes(&id, data) {
        let again = tree::encode_nodes(&nodes);
        assert_eq!(tree::decode_nodes(&id, &again).expect("re-encoded tree decodes"), nodes);
    }
    if let Ok(ids) = tree::decode_list(&id, data) {
        assert_eq!(tree::encode_list(&ids), data);
    }
    if let Ok(packs) = index::decode_index(data) {
        let again = index::encode_index(&packs).expect("a decoded index encodes");
        let back = index::decode_index(&again).expect("re-encoded index decodes");
        assert_eq!(back.len(), packs.len());
    }
    for e in pack::scan_headers(data) {
        assert!(e.offset as usize + e.stored_len as usize <= data.len());
    }
});
