"""Optuna's ask-and-tell interface behind Ray Tune's Searcher interface: each Tune trial is one Optuna trial.

Ray's own OptunaSearch keeps the Optuna trial of each Tune trial in a private attribute, while the search needs it
in two places: its number keys the proposal's row, and at the end it records how many epochs the proposal trained
(ASHA may stop it early), which best_parameters() reads. So the few lines below use only public APIs: Tune's Searcher
hooks and Optuna's Study.ask/tell, Trial.number and Trial.set_user_attr.

A finished proposal is told to Optuna only once its row is written (settle(), called by the row writer): Tune calls
the searcher before the callbacks, and a driver killed between the two would leave a finished Optuna trial without
a row. Told after the row, the worst case is a row whose trial is still running, which the next run settles from
the row (search._settle_interrupted).
"""

from __future__ import annotations

from ray.tune.search import Searcher


class OptunaProposals(Searcher):
    """Proposals from the Optuna study `study` over `space` ({name: optuna distribution}), maximising `metric`.
    The config of each Tune trial is the proposal's parameters plus 'optuna_trial', its Optuna trial number."""

    def __init__(self, study, space: dict, metric: str):
        super().__init__(metric=metric, mode="max")
        self.study, self.space = study, space
        self.asked = {}     # Tune trial id -> optuna.Trial
        self.finished = {}  # Tune trial id -> (optuna.Trial, its value or None, whether it raised), until settled

    def suggest(self, trial_id: str) -> dict:
        if trial_id not in self.asked:
            self.asked[trial_id] = self.study.ask(self.space)
        trial = self.asked[trial_id]
        return {**trial.params, "optuna_trial": trial.number}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.asked.pop(trial_id)
        if result and "epoch" in result:   # an attribute of a running trial: set now, read once it is told
            trial.set_user_attr("epochs", result["epoch"])
        self.finished[trial_id] = (trial, (result or {}).get(self.metric), error)

    def settle(self, trial_id: str) -> None:
        """Tell Optuna how the finished proposal ended (its row is written by now)."""
        tell(self.study, *self.finished.pop(trial_id))


def tell(study, trial, value: float | None, error: bool) -> None:
    from optuna.trial import TrialState
    if value is not None:
        study.tell(trial, value)
    else:   # a proposal that raised fails; one stopped before its first report is pruned
        study.tell(trial, state=TrialState.FAIL if error else TrialState.PRUNED)
