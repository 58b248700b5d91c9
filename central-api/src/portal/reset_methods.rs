//! Password-reset methods on Security info: an email address (saved only
//! once the code sent to it comes back) and security questions (chosen
//! from [`QUESTIONS`], answers normalised and kept as Argon2id hashes).
//!
//! They live in `reset_emails` and `security_answers`, never in
//! `methods`: the registrations lookup, the verification and the page's
//! sign-in do not see them, so a user with only these is not enrolled.

use super::pages::{
    render, Chrome, ConfirmPage, EmailMethodPage, QuestionSlot, QuestionsMethodPage, ResetMethodRow,
};
use super::session::{CsrfForm, Session, Visit};
use super::signin::{audit, csrf_of, fresh};
use super::time::date;
use super::{Exit, PageResult, Portal};
use axum::extract::State;
use serde::Deserialize;
use sqlx::Row;
use std::sync::Arc;
use twostep_common::reset::{
    check_answer, email_code_usable, generate_email_code, normalise_email, normalise_email_code,
    EMAIL_CODE_LIFETIME_SECS, EMAIL_CODE_TRIES, QUESTIONS, QUESTIONS_NEEDED,
};

/// The registered password-reset address of `user_id`, if any.
///
/// # Errors
/// Database errors.
pub async fn email_of(p: &Portal, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT address FROM reset_emails WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&p.app.pool)
        .await?
        .map(|r| r.try_get("address"))
        .transpose()
}

/// The user's security questions (indexes into [`QUESTIONS`]) and answer
/// hashes, in the order they were chosen.
///
/// # Errors
/// Database errors.
pub async fn answers_of(p: &Portal, user_id: i64) -> Result<Vec<(usize, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT question, answer_hash FROM security_answers WHERE user_id = $1
         ORDER BY created_at, question",
    )
    .bind(user_id)
    .fetch_all(&p.app.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let q: i64 = r.try_get("question")?;
        if let Ok(q) = usize::try_from(q) {
            if q < QUESTIONS.len() {
                out.push((q, r.try_get("answer_hash")?));
            }
        }
    }
    Ok(out)
}

/// The Email row of Security info.
///
/// # Errors
/// Database errors.
pub async fn email_row(p: &Portal, user_id: i64) -> Result<Option<ResetMethodRow>, Exit> {
    let row = sqlx::query("SELECT address, created_at FROM reset_emails WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&p.app.pool)
        .await?;
    Ok(match row {
        Some(r) => Some(ResetMethodRow {
            label: r.try_get("address")?,
            added: date(r.try_get("created_at")?),
        }),
        None => None,
    })
}

/// The Security questions row of Security info.
///
/// # Errors
/// Database errors.
pub async fn questions_row(p: &Portal, user_id: i64) -> Result<Option<ResetMethodRow>, Exit> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MAX(created_at) AS added FROM security_answers WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(&p.app.pool)
    .await?;
    let n: i64 = row.try_get("n")?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(ResetMethodRow {
        label: format!("{n} questions answered"),
        added: date(row.try_get::<Option<i64>, _>("added")?.unwrap_or(0)),
    }))
}

async fn chrome(p: &Portal, s: &Session, title: &str) -> Result<Chrome, Exit> {
    Ok(Chrome::new(
        p,
        title,
        "security",
        csrf_of(p, s).await?,
        Some(s),
    ))
}

// ---- Email -------------------------------------------------------------------

async fn email_page(
    p: &Portal,
    s: &Session,
    address: String,
    sent_to: Option<String>,
    error: Option<&'static str>,
) -> PageResult {
    let page = EmailMethodPage {
        chrome: chrome(p, s, "Email").await?,
        address,
        sent_to,
        error,
    };
    render(&page)
}

/// `GET /my/security-info/email`: the address to add.
pub async fn email_start(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/email").await?;
    if p.app.mailer.is_none() {
        return Err(Exit::Redirect("/my/security-info/add".into()));
    }
    let current = email_of(&p, s.user_id).await?.unwrap_or_default();
    email_page(&p, s, current, None, None).await
}

#[derive(Deserialize)]
pub struct AddressForm {
    #[serde(default)]
    address: String,
}

/// `POST /my/security-info/email`: sends a code to the address; it is
/// saved only once that code comes back.
pub async fn email_send(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<AddressForm>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/email").await?;
    let Some(mailer) = p.app.mailer.clone() else {
        return Err(Exit::Redirect("/my/security-info/add".into()));
    };
    let Some(address) = normalise_email(&f.address) else {
        return email_page(
            &p,
            s,
            f.address.trim().to_owned(),
            None,
            Some("Enter an email address like name@example.com."),
        )
        .await;
    };
    let code = generate_email_code();
    let hash = p.hash_password(&code).await?;
    let now = p.now();
    sqlx::query("DELETE FROM email_proofs WHERE expires_at <= $1")
        .bind(now)
        .execute(&p.app.pool)
        .await?;
    sqlx::query(
        "INSERT INTO email_proofs (session_hash, user_id, address, code_hash, expires_at, tries_left)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (session_hash) DO UPDATE SET address = excluded.address,
           code_hash = excluded.code_hash, expires_at = excluded.expires_at,
           tries_left = excluded.tries_left",
    )
    .bind(&s.id_hash)
    .bind(s.user_id)
    .bind(&address)
    .bind(&hash)
    .bind(now + EMAIL_CODE_LIFETIME_SECS)
    .bind(EMAIL_CODE_TRIES)
    .execute(&p.app.pool)
    .await?;
    let body = format!(
        "Hello {name},\n\nYour code to add this address to your {issuer} security info is:\n\n    {code}\n\nIt works once, for 15 minutes. If you didn't ask for it, ignore this message.\n",
        name = s.name(),
        issuer = p.app.issuer,
    );
    if let Err(e) = mailer
        .send(&address, "Your code to add this email address", body)
        .await
    {
        tracing::warn!(error = %e, username = %s.username, "could not send the code proving a password-reset address");
        return email_page(
            &p,
            s,
            address,
            None,
            Some("We couldn't send a code to that address. Check it, or try again later."),
        )
        .await;
    }
    audit(
        &p.app.pool,
        &p,
        &s.username,
        "portal.reset_email",
        "code_sent",
        v.peer.as_deref(),
        None,
    )
    .await?;
    Err(Exit::Redirect("/my/security-info/email/code".into()))
}

async fn pending_proof(
    p: &Portal,
    s: &Session,
) -> Result<Option<(String, String, i64, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT address, code_hash, expires_at, tries_left FROM email_proofs
         WHERE session_hash = $1 AND user_id = $2",
    )
    .bind(&s.id_hash)
    .bind(s.user_id)
    .fetch_optional(&p.app.pool)
    .await?;
    row.map(|r| {
        Ok((
            r.try_get("address")?,
            r.try_get("code_hash")?,
            r.try_get("expires_at")?,
            r.try_get("tries_left")?,
        ))
    })
    .transpose()
}

/// `GET /my/security-info/email/code`.
pub async fn email_code_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/email").await?;
    match pending_proof(&p, s).await? {
        Some((address, ..)) => email_page(&p, s, String::new(), Some(address), None).await,
        None => Err(Exit::Redirect("/my/security-info/email".into())),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// `POST /my/security-info/email/code`: saves the address when the code
/// is the one sent to it (once, within 15 minutes, at most 5 tries).
pub async fn email_code_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<CodeForm>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/email").await?;
    let Some((address, hash, expires_at, tries_left)) = pending_proof(&p, s).await? else {
        return Err(Exit::Redirect("/my/security-info/email".into()));
    };
    let now = p.now();
    if !email_code_usable(now, expires_at, tries_left) {
        return email_page(
            &p,
            s,
            String::new(),
            Some(address),
            Some("That code has expired or had too many wrong tries. Go back and send a new one."),
        )
        .await;
    }
    let typed = normalise_email_code(&f.code).unwrap_or_default();
    if !p.verify_password(Some(&hash), &typed).await? {
        sqlx::query("UPDATE email_proofs SET tries_left = tries_left - 1 WHERE session_hash = $1")
            .bind(&s.id_hash)
            .execute(&p.app.pool)
            .await?;
        return email_page(
            &p,
            s,
            String::new(),
            Some(address),
            Some("That code didn't work. Check the email we sent and try again."),
        )
        .await;
    }
    let mut tx = p.app.pool.begin().await?;
    // Used once: only the statement that removes it saves the address.
    let gone = sqlx::query("DELETE FROM email_proofs WHERE session_hash = $1 AND code_hash = $2")
        .bind(&s.id_hash)
        .bind(&hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(Exit::Redirect("/my/security-info/email".into()));
    }
    sqlx::query(
        "INSERT INTO reset_emails (user_id, address, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET address = excluded.address,
           created_at = excluded.created_at",
    )
    .bind(s.user_id)
    .bind(&address)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit(
        &mut *tx,
        &p,
        &s.username,
        "portal.reset_email",
        "added",
        v.peer.as_deref(),
        None,
    )
    .await?;
    tx.commit().await?;
    Err(Exit::Redirect("/my/security-info?done=email".into()))
}

// ---- Security questions --------------------------------------------------------

async fn questions_page(
    p: &Portal,
    s: &Session,
    chosen: [Option<usize>; QUESTIONS_NEEDED],
    error: Option<&'static str>,
) -> PageResult {
    let page = QuestionsMethodPage {
        chrome: chrome(p, s, "Security questions").await?,
        needed: QUESTIONS_NEEDED,
        questions: QUESTIONS,
        slots: chosen.iter().map(|c| QuestionSlot { chosen: *c }).collect(),
        error,
    };
    render(&page)
}

/// `GET /my/security-info/questions`.
pub async fn questions_start(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/questions").await?;
    let mut chosen = [None; QUESTIONS_NEEDED];
    for (slot, (q, _)) in chosen.iter_mut().zip(answers_of(&p, s.user_id).await?) {
        *slot = Some(q);
    }
    questions_page(&p, s, chosen, None).await
}

#[derive(Deserialize)]
pub struct QuestionsForm {
    #[serde(default)]
    question1: String,
    #[serde(default)]
    answer1: String,
    #[serde(default)]
    question2: String,
    #[serde(default)]
    answer2: String,
    #[serde(default)]
    question3: String,
    #[serde(default)]
    answer3: String,
}

/// The questions chosen in a form (to show it again), and the questions
/// with their normalised answers or what to say.
type ReadQuestions = (
    [Option<usize>; QUESTIONS_NEEDED],
    Result<Vec<(usize, String)>, &'static str>,
);

/// The questions and normalised answers of a filled-in form, or what to
/// say.
fn read_questions(f: &QuestionsForm) -> ReadQuestions {
    let pairs = [
        (&f.question1, &f.answer1),
        (&f.question2, &f.answer2),
        (&f.question3, &f.answer3),
    ];
    let chosen = pairs.map(|(q, _)| q.parse::<usize>().ok().filter(|i| *i < QUESTIONS.len()));
    let mut out = Vec::with_capacity(QUESTIONS_NEEDED);
    for (c, (_, a)) in chosen.iter().zip(pairs) {
        let Some(q) = c else {
            return (chosen, Err("Choose a question for each answer."));
        };
        if out.iter().any(|(seen, _)| seen == q) {
            return (chosen, Err("Choose three different questions."));
        }
        match check_answer(a) {
            Ok(n) => out.push((*q, n)),
            Err(e) => return (chosen, Err(e)),
        }
    }
    (chosen, Ok(out))
}

/// `POST /my/security-info/questions`: replaces the user's questions.
pub async fn questions_submit(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(f): CsrfForm<QuestionsForm>,
) -> PageResult {
    let s = fresh(&p, &v, "/my/security-info/questions").await?;
    let (chosen, read) = read_questions(&f);
    let answers = match read {
        Ok(a) => a,
        Err(e) => return questions_page(&p, s, chosen, Some(e)).await,
    };
    let mut hashed = Vec::with_capacity(answers.len());
    for (q, a) in &answers {
        hashed.push((*q, p.hash_password(a).await?));
    }
    let now = p.now();
    let mut tx = p.app.pool.begin().await?;
    sqlx::query("DELETE FROM security_answers WHERE user_id = $1")
        .bind(s.user_id)
        .execute(&mut *tx)
        .await?;
    for (i, (q, h)) in hashed.iter().enumerate() {
        sqlx::query(
            "INSERT INTO security_answers (user_id, question, answer_hash, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(s.user_id)
        .bind(i64::try_from(*q).unwrap_or(0))
        .bind(h)
        // The order chosen is the order asked: one second apart.
        .bind(now + i64::try_from(i).unwrap_or(0))
        .execute(&mut *tx)
        .await?;
    }
    audit(
        &mut *tx,
        &p,
        &s.username,
        "portal.security_questions",
        "saved",
        v.peer.as_deref(),
        None,
    )
    .await?;
    tx.commit().await?;
    Err(Exit::Redirect("/my/security-info?done=questions".into()))
}

// ---- delete ------------------------------------------------------------------

/// What a delete page removes.
#[derive(Debug, Clone, Copy)]
enum Which {
    Email,
    Questions,
}

impl Which {
    fn path(self) -> &'static str {
        match self {
            Self::Email => "/my/security-info/email/delete",
            Self::Questions => "/my/security-info/questions/delete",
        }
    }
}

async fn delete_page(p: &Portal, v: &Visit, which: Which) -> PageResult {
    let s = fresh(p, v, which.path()).await?;
    let (heading, text) = match which {
        Which::Email => (
            "Delete your email address?",
            "You won't be able to reset your password with a code sent to it.",
        ),
        Which::Questions => (
            "Delete your security questions?",
            "You won't be able to reset your password by answering them.",
        ),
    };
    let page = ConfirmPage {
        chrome: chrome(p, s, heading).await?,
        heading,
        text: text.into(),
        warning: None,
        action: which.path().into(),
        button: "Delete",
        cancel: "/my/security-info",
    };
    render(&page)
}

async fn delete(p: &Portal, v: &Visit, which: Which) -> PageResult {
    let s = fresh(p, v, which.path()).await?;
    let (sql, action, done) = match which {
        Which::Email => (
            "DELETE FROM reset_emails WHERE user_id = $1",
            "portal.reset_email",
            "email-deleted",
        ),
        Which::Questions => (
            "DELETE FROM security_answers WHERE user_id = $1",
            "portal.security_questions",
            "questions-deleted",
        ),
    };
    let mut tx = p.app.pool.begin().await?;
    sqlx::query(sql).bind(s.user_id).execute(&mut *tx).await?;
    audit(
        &mut *tx,
        p,
        &s.username,
        action,
        "deleted",
        v.peer.as_deref(),
        None,
    )
    .await?;
    tx.commit().await?;
    Err(Exit::Redirect(format!("/my/security-info?done={done}")))
}

/// `GET /my/security-info/email/delete`.
pub async fn email_delete_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    delete_page(&p, &v, Which::Email).await
}

/// `POST /my/security-info/email/delete`.
pub async fn email_delete(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    delete(&p, &v, Which::Email).await
}

/// `GET /my/security-info/questions/delete`.
pub async fn questions_delete_page(State(p): State<Arc<Portal>>, v: Visit) -> PageResult {
    delete_page(&p, &v, Which::Questions).await
}

/// `POST /my/security-info/questions/delete`.
pub async fn questions_delete(
    State(p): State<Arc<Portal>>,
    v: Visit,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> PageResult {
    delete(&p, &v, Which::Questions).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(q: [&str; 3], a: [&str; 3]) -> QuestionsForm {
        QuestionsForm {
            question1: q[0].into(),
            answer1: a[0].into(),
            question2: q[1].into(),
            answer2: a[1].into(),
            question3: q[2].into(),
            answer3: a[2].into(),
        }
    }

    #[test]
    fn three_different_questions_each_answered() {
        let (_, r) = read_questions(&form(["0", "4", "2"], [" Rex ", "Lyon", "St  Mary's"]));
        assert_eq!(
            r.unwrap(),
            vec![
                (0, "rex".to_owned()),
                (4, "lyon".to_owned()),
                (2, "st mary's".to_owned())
            ]
        );
        let (chosen, r) = read_questions(&form(["0", "0", "2"], ["aa", "bb", "cc"]));
        assert_eq!(r, Err("Choose three different questions."));
        assert_eq!(chosen, [Some(0), Some(0), Some(2)]);
        let (_, r) = read_questions(&form(["0", "", "2"], ["aa", "bb", "cc"]));
        assert_eq!(r, Err("Choose a question for each answer."));
        let (_, r) = read_questions(&form(["0", "99", "2"], ["aa", "bb", "cc"]));
        assert_eq!(r, Err("Choose a question for each answer."));
        let (_, r) = read_questions(&form(["0", "1", "2"], ["aa", " ", "cc"]));
        assert!(r.is_err());
    }
}
