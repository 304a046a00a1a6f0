//! Mail that did not reach everyone (issue 18): who a refusal concerns,
//! and what the agents are told. Pure: the relay's answers come in as
//! text, the store and the outbox are the workers' business.

use crate::settings::Language;

/// How Guichet learnt that a recipient did not get a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// 5xx at RCPT (or for the whole message).
    Relay,
    /// 4xx until the retries ran out.
    Retries,
    /// A delivery report (DSN) that came back later.
    Bounce,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Relay => "relay",
            Source::Retries => "retries",
            Source::Bounce => "bounce",
        }
    }
}

/// Outbox kinds written for agents only (their copy, notices): a refused
/// address there is an admin's problem, told in the log, never in another
/// notice (no loop).
pub fn to_agents(kind: &str) -> bool {
    matches!(kind, "agent_copy" | "agent_notice" | "delivery_notice")
}

/// `address` is the main recipient of a mail of `kind` on a ticket whose
/// customer is `client`: the one whose refusal the agents must hear of.
pub fn is_main(kind: &str, client: &str, address: &str) -> bool {
    !to_agents(kind) && address.trim().eq_ignore_ascii_case(client.trim())
}

/// Addresses of `recipients` (comma-separated, as the outbox keeps them)
/// that are not in `refused` (compared without case).
pub fn without<'a>(recipients: &'a str, refused: &[String]) -> Vec<&'a str> {
    recipients
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty() && !refused.iter().any(|r| r.eq_ignore_ascii_case(a)))
        .collect()
}

/// The notice's explanation: to whom, why (the relay's words), what to do.
/// `main`: the address is the customer's; else a Cc, who is left out of
/// the ticket's later mail.
pub fn failure_reason(
    lang: Language,
    address: &str,
    reply: &str,
    source: Source,
    main: bool,
) -> String {
    let reply = reply.trim();
    if !main {
        return match lang {
            Language::Fr => format!(
                "{address} n'a pas reçu le message ; les autres destinataires l'ont reçu. \
                 Réponse du serveur de messagerie :\n  {reply}\n\n\
                 Que faire : cette adresse est écartée des prochains messages du ticket \
                 jusqu'à ce que quelqu'un la nomme de nouveau ; vérifiez-la auprès du client \
                 si elle doit recevoir la réponse."
            ),
            Language::En => format!(
                "{address} did not get the mail; the other recipients did. \
                 The mail server's answer:\n  {reply}\n\n\
                 What to do: this address is left out of the ticket's later mail until \
                 someone names it again; check it with the customer if it should get the answer."
            ),
        };
    }
    match (lang, source) {
        (Language::Fr, Source::Relay) => format!(
            "Le serveur de messagerie a refusé l'adresse {address} :\n  {reply}\n\n\
             Que faire : vérifiez l'adresse auprès du client (une faute de frappe ?), \
             corrigez-la ou obtenez-en une autre, puis renvoyez la réponse. \
             Le ticket ne se fermera pas tout seul d'ici là."
        ),
        (Language::Fr, Source::Retries) => format!(
            "Le serveur de messagerie n'a pas pu livrer {address} malgré des essais répétés ; \
             Guichet a abandonné. Dernière réponse :\n  {reply}\n\n\
             Que faire : réessayez plus tard, ou joignez le client par un autre moyen. \
             Le ticket ne se fermera pas tout seul d'ici là."
        ),
        (Language::Fr, Source::Bounce) => format!(
            "Le message a été accepté, puis renvoyé : il n'a pas atteint {address}. \
             Le rapport dit :\n  {reply}\n\n\
             Que faire : vérifiez l'adresse auprès du client, corrigez-la ou obtenez-en une \
             autre, puis renvoyez la réponse. Le ticket ne se fermera pas tout seul d'ici là."
        ),
        (Language::En, Source::Relay) => format!(
            "The mail server refused the address {address}:\n  {reply}\n\n\
             What to do: check the address with the customer (a typo?), correct it or get \
             another one, then send the answer again. Until then the ticket will not close \
             on its own."
        ),
        (Language::En, Source::Retries) => format!(
            "The mail server could not deliver to {address} despite repeated tries; \
             Guichet gave up. Its last answer:\n  {reply}\n\n\
             What to do: try again later, or reach the customer another way. Until then \
             the ticket will not close on its own."
        ),
        (Language::En, Source::Bounce) => format!(
            "The mail was accepted, then came back: it did not reach {address}. \
             The report says:\n  {reply}\n\n\
             What to do: check the address with the customer, correct it or get another \
             one, then send the answer again. Until then the ticket will not close on its own."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_customer_is_the_main_recipient_of_customer_mail_only() {
        assert!(is_main("agent_reply", "Ann@Example.org", "ann@example.org"));
        assert!(is_main(
            "acknowledgement",
            "ann@example.org",
            "ann@example.org"
        ));
        assert!(!is_main(
            "agent_reply",
            "ann@example.org",
            "bob@example.org"
        ));
        assert!(!is_main("agent_copy", "ann@example.org", "ann@example.org"));
    }

    #[test]
    fn refused_addresses_are_left_out() {
        let refused = vec!["Bob@x.test".to_string()];
        assert_eq!(
            without("a@x.test,bob@x.test, c@x.test", &refused),
            ["a@x.test", "c@x.test"]
        );
    }

    #[test]
    fn the_reason_names_the_address_the_relays_words_and_what_to_do() {
        for lang in [Language::En, Language::Fr] {
            for source in [Source::Relay, Source::Retries, Source::Bounce] {
                for main in [true, false] {
                    let r =
                        failure_reason(lang, "ann@x.test", "550 5.1.1 no such user", source, main);
                    assert!(
                        r.contains("ann@x.test") && r.contains("550 5.1.1 no such user"),
                        "{r}"
                    );
                }
            }
        }
    }
}
