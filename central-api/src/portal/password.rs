//! Page passwords: Argon2id (RFC 9106) with the `argon2` crate's defaults
//! (m = 19 MiB, t = 2, p = 1), stored as PHC strings in `users.password_hash`.
//! Hashing runs on the blocking pool, a few at a time.

use super::Portal;
use crate::error::ApiError;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use zeroize::Zeroizing;

fn internal(what: &str) -> ApiError {
    ApiError::new(
        twostep_common::api::ApiErrorCode::Internal,
        format!("password hashing failed: {what}"),
    )
}

/// The PHC string of `password` with a new random salt.
///
/// # Errors
/// Only when Argon2 refuses its input (it does not for these sizes).
pub fn hash(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| internal(&e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (constant time in the
/// password; a malformed string matches nothing).
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash of a random password, checked for unknown users and users
/// without a password so their answer takes as long as a wrong password.
fn dummy() -> &'static str {
    static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        hash(crate::crypto::random_token().as_str()).unwrap_or_default()
    });
    &DUMMY
}

impl Portal {
    /// [`hash`] on the blocking pool.
    ///
    /// # Errors
    /// As [`hash`].
    pub async fn hash_password(&self, password: &str) -> Result<String, ApiError> {
        let pw = Zeroizing::new(password.to_owned());
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| internal("closed"))?;
        tokio::task::spawn_blocking(move || hash(&pw))
            .await
            .map_err(|e| internal(&e.to_string()))?
    }

    /// [`verify`] on the blocking pool; `phc` `None` (unknown user, no
    /// password) checks a dummy hash and answers `false`.
    ///
    /// # Errors
    /// Only when the blocking task fails.
    pub async fn verify_password(
        &self,
        phc: Option<&str>,
        password: &str,
    ) -> Result<bool, ApiError> {
        let pw = Zeroizing::new(password.to_owned());
        let known = phc.is_some();
        let phc = phc.map_or_else(|| dummy().to_owned(), str::to_owned);
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| internal("closed"))?;
        let ok = tokio::task::spawn_blocking(move || verify(&phc, &pw))
            .await
            .map_err(|e| internal(&e.to_string()))?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterY"));
        assert!(!verify("not a phc string", "x"));
        assert_ne!(h, hash("correct horse battery").unwrap());
    }
}
