//! pam_twostep.so (being built).
