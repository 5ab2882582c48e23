//! RFC 3483 usage feedback (being written).
