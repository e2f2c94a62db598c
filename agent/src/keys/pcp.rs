//! The device key in the TPM through the Microsoft Platform Crypto Provider (CNG/NCrypt).
