//! The words Guichet puts into its mail besides the templates' own text,
//! in each language: the agents' copy headline and help, status and
//! priority names. Templates get them as values (`headline`, `help`,
//! `status_label`, `priority_label`), so that a French desk's copy is
//! French throughout; [`own_lines`] gives the same lines back to the
//! conversation rules, which recognise them in agents' replies and never
//! relay them.

use crate::domain::{Priority, TicketStatus};
pub use crate::rules::conversation::Headline;
use crate::settings::Language;

pub fn headline(lang: Language, h: Headline) -> String {
    match (lang, h) {
        (Language::En, Headline::NewTicket) => "New ticket".into(),
        (Language::Fr, Headline::NewTicket) => "Nouveau ticket".into(),
        (Language::En, Headline::NewLinked { old }) => {
            format!("New ticket, continuing closed ticket {old}")
        }
        (Language::Fr, Headline::NewLinked { old }) => {
            format!("Nouveau ticket, suite du ticket fermé {old}")
        }
        (Language::En, Headline::CustomerReply) => "Customer reply".into(),
        (Language::Fr, Headline::CustomerReply) => "Réponse du client".into(),
        (Language::En, Headline::Reopened) => "Customer reply: the ticket is reopened".into(),
        (Language::Fr, Headline::Reopened) => "Réponse du client : le ticket est rouvert".into(),
    }
}

/// The agents' copy's help, above its separator line.
pub fn help(lang: Language) -> &'static str {
    match lang {
        Language::En => {
            "Reply to this email to answer the customer. Lines such as these act\n\
             as commands and are never sent: #close, #resolve, #reopen,\n\
             #priority low|normal|high|urgent, #department NAME,\n\
             #note (the whole reply is an internal note) or #note TEXT,\n\
             #merge-customer ADDRESS (another address of this customer)."
        }
        Language::Fr => {
            "Répondez à ce message pour répondre au client. Ces lignes sont des\n\
             commandes, jamais envoyées : #close, #resolve, #reopen,\n\
             #priority low|normal|high|urgent, #department NOM,\n\
             #note (toute la réponse est une note interne) ou #note TEXTE,\n\
             #merge-customer ADRESSE (une autre adresse de ce client)."
        }
    }
}

pub fn status_label(lang: Language, s: TicketStatus) -> &'static str {
    match (lang, s) {
        (Language::En, TicketStatus::Open) => "open",
        (Language::En, TicketStatus::AwaitingCustomer) => "awaiting the customer",
        (Language::En, TicketStatus::Closed) => "closed",
        (Language::En, TicketStatus::Resolved) => "resolved",
        (Language::Fr, TicketStatus::Open) => "ouvert",
        (Language::Fr, TicketStatus::AwaitingCustomer) => "en attente du client",
        (Language::Fr, TicketStatus::Closed) => "fermé",
        (Language::Fr, TicketStatus::Resolved) => "résolu",
    }
}

pub fn priority_label(lang: Language, p: Priority) -> &'static str {
    match (lang, p) {
        (Language::En, Priority::Low) => "low",
        (Language::En, Priority::Normal) => "normal",
        (Language::En, Priority::High) => "high",
        (Language::En, Priority::Urgent) => "urgent",
        (Language::Fr, Priority::Low) => "basse",
        (Language::Fr, Priority::Normal) => "normale",
        (Language::Fr, Priority::High) => "haute",
        (Language::Fr, Priority::Urgent) => "urgente",
    }
}

/// Every fixed line Guichet writes into mail that only agents read, in
/// both languages (a desk may change language while copies are out).
pub fn own_lines() -> Vec<&'static str> {
    [Language::En, Language::Fr]
        .into_iter()
        .flat_map(|l| help(l).lines())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_exists_in_both_languages_and_differs() {
        for s in TicketStatus::ALL {
            assert_ne!(
                status_label(Language::En, *s),
                status_label(Language::Fr, *s)
            );
        }
        for p in Priority::ALL {
            assert_ne!(
                priority_label(Language::En, *p),
                priority_label(Language::Fr, *p)
            );
        }
        for h in [
            Headline::NewTicket,
            Headline::NewLinked { old: 3 },
            Headline::CustomerReply,
            Headline::Reopened,
        ] {
            assert_ne!(headline(Language::En, h), headline(Language::Fr, h));
        }
        assert!(headline(Language::Fr, Headline::NewLinked { old: 3 }).contains('3'));
        assert_eq!(own_lines().len(), 10);
    }
}
