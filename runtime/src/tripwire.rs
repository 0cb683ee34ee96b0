//! Records which limit stopped a build, so the error names the limit rather than the trap the
//! guest died of.

use std::sync::{Arc, Mutex};

use crate::limits::LimitExceeded;

/// Shared by the memory limiter, the output pipes and the clock watchdog of one build.
#[derive(Clone, Default)]
pub(crate) struct Tripwire(Arc<Mutex<Option<LimitExceeded>>>);

impl Tripwire {
    /// Records the first limit hit; later ones are consequences of it.
    pub(crate) fn trip(&self, limit: LimitExceeded) {
        self.0.lock().unwrap().get_or_insert(limit);
    }

    /// The limit that was hit, if any.
    pub(crate) fn tripped(&self) -> Option<LimitExceeded> {
        self.0.lock().unwrap().clone()
    }
}
