//! Linux-PAM's dispatch rules (`_pam_dispatch_aux`) run over every
//! combination of module results, and the problems found on the way.

use super::describe::{describe_path, Problem, Via};
use super::{action_word, Action, AuthLine, Control, Ret, RETURN_NAMES, TWOSTEP_RESULTS};

/// Paths explored before the analysis gives up on a very large stack.
const MAX_PATHS: usize = 200_000;

/// How a result moves the dispatcher, apart from the action: success,
/// `PAM_IGNORE` (never counts), anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Category {
    Success,
    Ignore,
    Failure,
}

/// The results of one line that the dispatcher treats alike (same action,
/// same category): one of them stands for all in the search.
#[derive(Debug, Clone)]
pub(super) struct Class {
    pub(super) action: Action,
    pub(super) members: Vec<Ret>,
}

impl Ret {
    /// How the dispatcher counts this result.
    pub(super) fn category(self) -> Category {
        match self {
            Ret::SUCCESS => Category::Success,
            Ret::IGNORE => Category::Ignore,
            _ => Category::Failure,
        }
    }
}

impl Control {
    /// The action taken for `ret`, as Linux-PAM sets it up
    /// (`_pam_parse_conf_file`): the four keywords are bracket controls
    /// with `new_authtok_reqd` like `success`; in brackets the last
    /// `value=` of a result wins, then the first `default=`, then `bad`.
    pub fn action(&self, ret: Ret) -> Action {
        let r = ret.key();
        let like_success = r == "success" || r == "new_authtok_reqd";
        match self {
            Control::Required if like_success => Action::Ok,
            Control::Requisite if like_success => Action::Ok,
            Control::Optional if like_success => Action::Ok,
            Control::Sufficient if like_success => Action::Done,
            Control::Required | Control::Requisite if r == "ignore" => Action::Ignore,
            Control::Required => Action::Bad,
            Control::Requisite => Action::Die,
            Control::Optional | Control::Sufficient => Action::Ignore,
            Control::Brackets(pairs) => {
                let find = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, a)| *a);
                pairs
                    .iter()
                    .rev()
                    .find(|(key, _)| key == r)
                    .map(|(_, a)| *a)
                    .or_else(|| find("default"))
                    .unwrap_or(Action::Bad)
            }
        }
    }

    /// The `value=action` item that decides `ret` (`default=ignore`), for
    /// bracket controls.
    fn item_for(&self, ret: Ret) -> Option<String> {
        let Control::Brackets(pairs) = self else {
            return None;
        };
        let r = ret.key();
        let key = if pairs.iter().any(|(k, _)| k == r) {
            r
        } else if pairs.iter().any(|(k, _)| k == "default") {
            "default"
        } else {
            return None;
        };
        Some(format!("{key}={}", action_word(self.action(ret))))
    }
}

impl AuthLine {
    /// The results this line's module can return: pam_permit.so always
    /// succeeds, pam_deny.so always fails, the module returns
    /// [`TWOSTEP_RESULTS`], any other module any result.
    fn results(&self) -> Vec<Ret> {
        match self.module_name() {
            "pam_permit.so" => vec![Ret::SUCCESS],
            "pam_deny.so" => vec![Ret::AUTH_ERR],
            // A stash_code line never answers PAM_SUCCESS.
            _ if self.stashes() => TWOSTEP_RESULTS
                .iter()
                .map(|(r, _)| *r)
                .filter(|r| *r != Ret::SUCCESS)
                .collect(),
            _ if self.is_twostep() => TWOSTEP_RESULTS.iter().map(|(r, _)| *r).collect(),
            _ => RETURN_NAMES
                .iter()
                .filter(|n| **n != "default")
                .map(|n| Ret(n))
                .collect(),
        }
    }

    /// [`Self::results`] grouped by what the dispatcher does with them.
    /// The category matters to `ok`/`done` (only a success counts) and, for
    /// the module, to the report; elsewhere the action alone decides.
    fn classes(&self) -> Vec<Class> {
        let twostep = self.is_twostep();
        let mut out: Vec<(Option<Category>, Class)> = Vec::new();
        for r in self.results() {
            let action = self.control.action(r);
            let cat =
                (twostep || matches!(action, Action::Ok | Action::Done)).then(|| r.category());
            match out
                .iter_mut()
                .find(|(c, cl)| *c == cat && cl.action == action)
            {
                Some((_, cl)) => cl.members.push(r),
                None => out.push((
                    cat,
                    Class {
                        action,
                        members: vec![r],
                    },
                )),
            }
        }
        out.into_iter().map(|(_, c)| c).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impression {
    Undef,
    Positive,
    Negative,
}

/// Where a path through the stack stands: Linux-PAM's impression and
/// status, and what happened to the module on the way. A finished path
/// keeps its last state.
#[derive(Debug, Clone)]
struct State {
    impression: Impression,
    status_ok: bool,
    twostep_ran: bool,
    /// The first failure of the module on this path: line and class.
    twostep_failed: Option<(usize, usize)>,
    /// The first line that reset the stack after that failure.
    reset_after_failure: Option<usize>,
    ended_by: Option<usize>,
    skipped_by: Option<(usize, usize)>,
    /// Line and class of each result on this path.
    results: Vec<(usize, usize)>,
}

impl State {
    /// Whether the stack, ended in this state, authenticates.
    fn success(&self) -> bool {
        self.impression == Impression::Positive && self.status_ok
    }
}

/// Follows Linux-PAM's `_pam_dispatch_aux` from line `i` for every class of
/// results of every line; `false` when [`MAX_PATHS`] was reached.
fn explore(
    stack: &[AuthLine],
    classes: &[Vec<Class>],
    i: usize,
    st: State,
    out: &mut Vec<State>,
) -> bool {
    if out.len() >= MAX_PATHS {
        return false;
    }
    if i >= stack.len() {
        out.push(st);
        return true;
    }
    let line = &stack[i];
    for (c, class) in classes[i].iter().enumerate() {
        let ret = class.members[0];
        let mut s = st.clone();
        s.results.push((i, c));
        if line.is_twostep() {
            // A stash_code line has not checked the code: only the
            // verify_stashed line after the password has.
            s.twostep_ran |= !line.stashes();
            if ret.category() == Category::Failure && s.twostep_failed.is_none() {
                s.twostep_failed = Some((i, c));
            }
        }
        let mut next = i + 1;
        let mut stop = false;
        match class.action {
            Action::Ignore => {}
            Action::Reset => {
                s.impression = Impression::Undef;
                s.status_ok = false;
                if s.twostep_failed.is_some_and(|(t, _)| t != i) {
                    s.reset_after_failure.get_or_insert(i);
                }
            }
            a @ (Action::Ok | Action::Done) => {
                if (s.impression == Impression::Undef
                    || (s.impression == Impression::Positive && s.status_ok))
                    && ret != Ret::IGNORE
                {
                    s.impression = Impression::Positive;
                    s.status_ok = ret == Ret::SUCCESS;
                }
                if a == Action::Done && s.impression != Impression::Negative {
                    s.ended_by = Some(i);
                    stop = true;
                }
            }
            a @ (Action::Bad | Action::Die) => {
                if s.impression != Impression::Negative {
                    s.impression = Impression::Negative;
                    s.status_ok = false;
                }
                if a == Action::Die {
                    s.ended_by = Some(i);
                    stop = true;
                }
            }
            Action::Jump(n) => {
                next = i + 1 + n as usize;
                if s.skipped_by.is_none() {
                    if let Some(t) = stack
                        .iter()
                        .enumerate()
                        .take(next.min(stack.len()))
                        .skip(i + 1)
                        .find(|(_, l)| l.is_twostep())
                    {
                        s.skipped_by = Some((i, t.0));
                    }
                }
            }
        }
        let cont = if stop {
            out.push(s);
            true
        } else {
            explore(stack, classes, next, s, out)
        };
        if !cont {
            return false;
        }
    }
    true
}

/// The `forward_pass stash_code` / `verify_stashed` pairing: every
/// stash_code line needs a verify_stashed line after it, every
/// verify_stashed line a stash_code line before it, and a module between
/// the two whose failure does not end the stack (`requisite`,
/// `[... default=die]`) lets a wrong password reach verify_stashed, which
/// consumes the code.
fn stash_problems(stack: &[AuthLine]) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, l) in stack.iter().enumerate() {
        if l.stashes() {
            match stack[i + 1..].iter().position(AuthLine::verifies_stashed) {
                None => out.push(Problem::StashNotVerified {
                    at: l.origin.clone(),
                }),
                Some(k) => {
                    let verify = &stack[i + 1 + k];
                    for m in &stack[i + 1..i + 1 + k] {
                        if !m.is_twostep() && m.control.action(Ret::AUTH_ERR) != Action::Die {
                            out.push(Problem::PasswordFailureGoesOn {
                                at: m.origin.clone(),
                                module: m.module_name().to_owned(),
                                control: m.control.to_string(),
                                verify_at: verify.origin.clone(),
                            });
                        }
                    }
                }
            }
        }
        if l.verifies_stashed() && !stack[..i].iter().any(AuthLine::stashes) {
            out.push(Problem::NothingStashed {
                at: l.origin.clone(),
            });
        }
    }
    out
}

/// Every problem with the placement of `pam_twostep.so` in `stack`; empty
/// when every successful path ran the module and no failure of it is
/// ignored.
pub fn analyse(stack: &[AuthLine]) -> Vec<Problem> {
    let Some(first) = stack.iter().position(AuthLine::is_twostep) else {
        return vec![Problem::Absent];
    };
    let mut problems = Vec::new();
    for l in stack.iter().filter(|l| l.is_twostep()) {
        if l.control == Control::Optional {
            problems.push(Problem::Optional(l.origin.clone()));
        }
    }
    problems.extend(stash_problems(stack));
    let classes: Vec<Vec<Class>> = stack.iter().map(AuthLine::classes).collect();
    let mut paths = Vec::new();
    let start = State {
        impression: Impression::Undef,
        status_ok: false,
        twostep_ran: false,
        twostep_failed: None,
        reset_after_failure: None,
        ended_by: None,
        skipped_by: None,
        results: Vec::new(),
    };
    if !explore(stack, &classes, 0, start, &mut paths) {
        problems.push(Problem::TooComplex);
        return problems;
    }
    if !paths.iter().any(|p| p.success()) {
        let deny = stack[..first]
            .iter()
            .rev()
            .find(|l| l.module_name() == "pam_deny.so");
        problems.push(match deny {
            Some(d) => Problem::AfterDeny {
                at: d.origin.clone(),
            },
            None => Problem::NeverSucceeds,
        });
        return problems;
    }
    // A success without the module having run.
    if let Some(p) = paths.iter().find(|p| p.success() && !p.twostep_ran) {
        let problem = if let Some((j, t)) = p.skipped_by {
            Problem::JumpSkips {
                at: stack[j].origin.clone(),
                module: stack[j].module_name().to_owned(),
                control: stack[j].control.to_string(),
                module_at: stack[t].origin.clone(),
            }
        } else if let Some(k) = p.ended_by.filter(|&k| k < first) {
            Problem::AfterSufficient {
                at: stack[k].origin.clone(),
                module: stack[k].module_name().to_owned(),
                control: stack[k].control.to_string(),
            }
        } else {
            Problem::Bypass {
                path: describe_path(stack, &classes, &p.results),
            }
        };
        problems.push(problem);
    }
    // Failures of the module that still authenticate: per module line and
    // way through, every failure result concerned.
    let mut failures: Vec<(usize, Via, Vec<Ret>)> = Vec::new();
    for p in paths.iter().filter(|p| p.success()) {
        let Some((i, c)) = p.twostep_failed else {
            continue;
        };
        let line = &stack[i];
        if line.control == Control::Optional {
            continue; // reported as Problem::Optional
        }
        let class = &classes[i][c];
        let via = match class.action {
            Action::Ignore => Via::Ignored(
                class
                    .members
                    .iter()
                    .filter_map(|r| line.control.item_for(*r))
                    .fold(Vec::new(), |mut v, item| {
                        if !v.contains(&item) {
                            v.push(item);
                        }
                        v
                    }),
            ),
            Action::Jump(n) => Via::Jump(n),
            _ => match p.reset_after_failure {
                Some(k) => Via::Reset {
                    at: stack[k].origin.clone(),
                    module: stack[k].module_name().to_owned(),
                    control: stack[k].control.to_string(),
                },
                None => Via::Other,
            },
        };
        match failures.iter_mut().find(|(j, v, _)| *j == i && *v == via) {
            Some((_, _, rs)) => rs.extend(class.members.iter().copied()),
            None => failures.push((i, via, class.members.clone())),
        }
    }
    failures.sort_by_key(|(i, _, _)| *i);
    for (i, via, mut results) in failures {
        let rank = |r: &Ret| TWOSTEP_RESULTS.iter().position(|(t, _)| t == r);
        results.sort_by_key(rank);
        results.dedup();
        problems.push(Problem::FailureIgnored {
            at: stack[i].origin.clone(),
            control: stack[i].control.to_string(),
            results,
            via,
        });
    }
    problems
}
