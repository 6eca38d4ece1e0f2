//! The embedded store runs the conformance suite.

use super::*;

#[tokio::test]
async fn embedded_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig {
        path: dir.path().join("herald.db"),
        sync_full: true,
    })
    .unwrap();
    crate::conformance(Arc::new(store)).await;
}
