//! Pure packet processing for the encrypted data path (being written).
