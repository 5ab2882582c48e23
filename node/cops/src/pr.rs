//! COPS-PR sub-objects (being written).
