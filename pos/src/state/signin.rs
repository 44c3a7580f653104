//! Cashier sign-in, where the agent wants it (its status says
//! `cashier_sign_in`): the terminal asks the cashier's id and PIN, the
//! agent opens a session the client then sends with every request, and
//! sales and returns are recorded under the signed-in cashier. Ctrl-L
//! signs out (the next cashier signs in). A sale or return the agent
//! refuses for want of a session (`sign_in_required`: signed out, idle too
//! long, the agent restarted) is kept, in doubt, and sent again, the same
//! request, once the cashier has signed in.

use tally_agent_api::{ApiError, SignInRequest, SignedIn};

use super::{Dialog, Effect, Key, Level, PosState};

impl PosState {
    /// Whether the agent wants a cashier signed in and none is.
    pub fn sign_in_needed(&self) -> bool {
        self.agent_wants_sign_in() && self.signed_in.is_none()
    }

    fn agent_wants_sign_in(&self) -> bool {
        matches!(&self.agent, super::AgentLink::Up(st) if st.cashier_sign_in)
    }

    /// The sign-in dialog, the cashier's id filled in.
    pub(super) fn ask_sign_in(&mut self) -> Vec<Effect> {
        self.show(Dialog::SignIn {
            cashier: self.cashier.clone(),
            pin: String::new(),
            on_pin: !self.cashier.trim().is_empty(),
        })
    }

    /// The sign-in dialog's keys: Tab (or an arrow) between the fields,
    /// Enter on the id goes to the PIN, Enter on the PIN signs in; Esc
    /// closes it (a sale in doubt stays in doubt).
    pub(super) fn sign_in_key(
        &mut self,
        cashier: String,
        pin: String,
        on_pin: bool,
        key: Key,
    ) -> Vec<Effect> {
        let dialog = |cashier, pin, on_pin| Dialog::SignIn {
            cashier,
            pin,
            on_pin,
        };
        match key {
            Key::Esc if self.in_doubt => self.show(Dialog::InDoubt {
                error: "a cashier must sign in to send it again".into(),
            }),
            Key::Esc => Vec::new(),
            Key::Tab | Key::Up | Key::Down => self.show(dialog(cashier, pin, !on_pin)),
            Key::Enter if cashier.trim().is_empty() => {
                self.notify(Level::Error, "Type your cashier id.");
                self.show(dialog(cashier, pin, false))
            }
            Key::Enter if !on_pin || pin.is_empty() => {
                self.show(dialog(cashier, String::new(), true))
            }
            Key::Enter => {
                self.notify(Level::Info, "Signing in…");
                let req = SignInRequest {
                    cashier: cashier.trim().to_string(),
                    pin,
                };
                self.dialog = Some(dialog(cashier, String::new(), true));
                vec![Effect::SignIn(req)]
            }
            k if on_pin => {
                let pin = super::dialogs::edit(pin, k);
                self.show(dialog(cashier, pin, true))
            }
            k => {
                let cashier = super::dialogs::edit(cashier, k);
                self.show(dialog(cashier, pin, false))
            }
        }
    }

    /// The agent's answer to a sign-in: the cashier signed in (and a sale
    /// kept for want of a session sent again), or asked again.
    pub(super) fn signed_in_answer(&mut self, result: Result<SignedIn, ApiError>) -> Vec<Effect> {
        match result {
            Ok(s) => {
                self.notify(Level::Info, format!("Signed in: {}.", s.cashier));
                self.cashier = s.cashier.clone();
                self.signed_in = Some(s.cashier.clone());
                if matches!(self.dialog, Some(Dialog::SignIn { .. })) {
                    self.dialog = None;
                }
                if self.in_doubt {
                    if let Some(p) = self.pending.take() {
                        // Sent again under the cashier now signed in (the
                        // agent answers a recorded id whoever asks; a
                        // request naming another cashier it refuses).
                        return self.send(p.with_cashier(&s.cashier));
                    }
                }
                Vec::new()
            }
            Err(ApiError::Denied(body)) => {
                self.notify(Level::Error, format!("Not signed in: {}.", body.message));
                if self.dialog.is_none() {
                    return self.ask_sign_in();
                }
                Vec::new()
            }
            Err(e) => {
                self.note_failure(&e);
                self.notify(Level::Error, format!("Not signed in: {e}."));
                Vec::new()
            }
        }
    }

    /// Ctrl-L: the cashier signs out and the next one signs in (the id
    /// left empty: the next cashier types their own); with nobody signed
    /// in where the agent wants one, sign in.
    pub(super) fn sign_out(&mut self) -> Vec<Effect> {
        if self.signed_in.is_none() {
            if self.sign_in_needed() {
                return self.ask_sign_in();
            }
            return Vec::new();
        }
        if self.basket_open() {
            self.notify(
                Level::Error,
                "Finish or discard (F8) the open basket first.",
            );
            return Vec::new();
        }
        self.signed_in = None;
        self.cashier.clear();
        self.notify(Level::Info, "Signed out.");
        let mut effects = vec![Effect::SignOut];
        effects.extend(self.ask_sign_in());
        effects
    }

    /// A post refused for want of a session: kept (in doubt, in the
    /// journal, payments and all) and sent again once the cashier signed
    /// in. `None` for any other failure.
    pub(super) fn sign_in_required(&mut self, e: &ApiError) -> Option<Vec<Effect>> {
        let ApiError::Denied(body) = e else {
            return None;
        };
        if body.error != "sign_in_required" {
            return None;
        }
        self.signed_in = None;
        self.in_doubt = true;
        self.notify(
            Level::Error,
            "Sign in to send it: it is kept and goes again, the same, once you are signed in.",
        );
        Some(self.ask_sign_in())
    }
}
