//! The device key in the Secure Enclave (macOS).
