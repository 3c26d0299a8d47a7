//! The one error type of the web app: logs what went wrong inside, shows staff a clear French
//! message, and never shows internal error text.
//!
//! A handler returns `Result<_, WebError>`. The error becomes a response carrying a
//! [`ErrorMessage`] extension; the API router turns it into `{"error": "…"}` and the page router
//! into a French page (see `render_error_responses` in `lib.rs`), so both speak the same words.

use atelier_core::document::DocumentError;
use atelier_core::replica::ReplicaError;
use atelier_core::resource::FieldError;
use atelier_core::work::WorkError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Everything that can go wrong while serving a request. `Display` is for the log, in English;
/// staff read [`WebError::public_message`], in French.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No resource (or version) with this id, ref or URL.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is malformed (bad JSON, bad parameter); the message is French and safe to show.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The content is well formed but not valid; every problem names its field.
    #[error("invalid content")]
    Invalid(Vec<FieldError>),
    /// The request body is larger than the route accepts.
    #[error("request body too large")]
    TooLarge,
    /// Missing or wrong token.
    #[error("missing or wrong token")]
    Unauthorized,
    /// The request came from another site or host (possible cross-site forgery).
    #[error("request from another origin")]
    Forbidden,
    /// A page sent a form without the session cookie (the server restarted since it loaded).
    #[error("form sent without a session")]
    SessionExpired,
    /// A page was asked for by a browser that has not logged in (shown as the login page).
    #[error("page asked for without a session")]
    LoginRequired,
    /// A login link that is unknown, already used or expired (shown as the login page).
    #[error("login link unknown, used or expired")]
    LinkSpent,
    /// A working-together change this office may not make (a group it is not a member of,
    /// another office's comment); the French reason is shown.
    #[error("refused: {0}")]
    Refused(String),
    /// A group, task or comment that does not exist; the French message is shown.
    #[error("missing: {0}")]
    Missing(String),
    /// Anything else: logged in full, shown as a generic French message.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The French message of an error response, read by the routers' renderers.
#[derive(Debug, Clone)]
pub struct ErrorMessage {
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl WebError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized | Self::LoginRequired | Self::LinkSpent => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::SessionExpired | Self::Refused(_) => StatusCode::FORBIDDEN,
            Self::Missing(_) => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What staff read. Only messages written for them (ours, and core's French validation
    /// messages) are shown; internal errors are replaced by a generic sentence.
    pub fn public_message(&self) -> String {
        match self {
            Self::NotFound(what) => format!("Aucune fiche ne correspond à « {what} »."),
            Self::BadRequest(m) => m.clone(),
            Self::Invalid(errors) => {
                let parts: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{} : {}", crate::glossary::field_label(&e.field), e.message))
                    .collect();
                format!("La fiche n'a pas été enregistrée : {}", parts.join(" ; "))
            }
            Self::TooLarge => "Ce que vous envoyez est trop volumineux.".into(),
            Self::Unauthorized => {
                "Accès refusé : le jeton d'accès manque ou n'est pas le bon (voir server.json).".into()
            }
            Self::Forbidden => "Accès refusé : la demande ne vient pas de cette application.".into(),
            Self::SessionExpired => {
                "Votre session a expiré (le serveur a peut-être redémarré) : rechargez la page, reconnectez-vous si elle le demande, puis recommencez.".into()
            }
            Self::LoginRequired => {
                "Pour protéger les fiches de l'office, cette application ne s'ouvre qu'avec un lien de connexion à usage unique.".into()
            }
            Self::LinkSpent => {
                "Ce lien de connexion a déjà servi ou a expiré : chaque lien ne sert qu'une fois.".into()
            }
            Self::Refused(m) | Self::Missing(m) => sentence(m),
            Self::Internal(_) => {
                "Une erreur inattendue est survenue ; rien n'a été perdu de ce qui était déjà enregistré. Réessayez, et si cela se reproduit, signalez-le.".into()
            }
        }
    }
}

use atelier_core::media::store::MediaError;

impl From<ReplicaError> for WebError {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::NotFound(what) => Self::NotFound(what),
            ReplicaError::Document(d) => d.into(),
            // What staff can act on (a refused file, a full disk) is said; the rest is logged.
            ReplicaError::Media(
                m @ (MediaError::Unsupported(_)
                | MediaError::TooLarge { .. }
                | MediaError::DiskFull { .. }),
            ) => Self::Invalid(vec![FieldError {
                field: "media".into(),
                message: m.to_string(),
            }]),
            ReplicaError::Work(w) => w.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<WorkError> for WebError {
    fn from(e: WorkError) -> Self {
        match e {
            WorkError::Invalid { field, message, .. } => Self::Invalid(vec![FieldError {
                field: field.into(),
                message,
            }]),
            WorkError::NotAMember { .. } | WorkError::Forbidden(_) => Self::Refused(e.to_string()),
            WorkError::NotFound(_) => Self::Missing(e.to_string()),
            WorkError::Malformed(_) => Self::Internal(e.to_string()),
        }
    }
}

/// Core's lowercase message as a sentence: capital first letter, final period.
fn sentence(m: &str) -> String {
    let mut c = m.chars();
    let mut out: String = match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

impl From<atelier_core::store::StoreError> for WebError {
    fn from(e: atelier_core::store::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<DocumentError> for WebError {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::Invalid(v) => Self::Invalid(v.0),
            DocumentError::BadEdit { field, message } => {
                Self::Invalid(vec![FieldError { field, message }])
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let message = ErrorMessage {
            message: self.public_message(),
            fields: match self {
                Self::Invalid(fields) => fields,
                _ => Vec::new(),
            },
        };
        let mut response = (status, message.message.clone()).into_response();
        response.extensions_mut().insert(message);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_text_is_logged_not_shown() {
        let e = WebError::internal("sled: corrupted page 42 at /home/secret");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.public_message().contains("sled"));
        let r = e.into_response();
        assert!(r.extensions().get::<ErrorMessage>().is_some());
    }

    #[test]
    fn validation_errors_name_fields_in_french() {
        let e: WebError = ReplicaError::Document(DocumentError::BadEdit {
            field: "title".into(),
            message: "obligatoire".into(),
        })
        .into();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e.public_message().contains("Titre : obligatoire"),
            "{}",
            e.public_message()
        );
    }
}
