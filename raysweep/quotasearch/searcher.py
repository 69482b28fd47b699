"""Optuna's ask-and-tell interface behind Ray Tune's Searcher interface: each Tune trial is one Optuna trial.

Ray's own OptunaSearch keeps the Optuna trial of each Tune trial in a private attribute, while the search needs it
in two places: its number keys the proposal's row, and at the end it records how many epochs the proposal trained
(ASHA may stop it early), which best_parameters() reads. So the few lines below use only public APIs: Tune's Searcher
hooks and Optuna's Study.ask/tell, Trial.number and Trial.set_user_attr.
"""

from __future__ import annotations

from ray.tune.search import Searcher


class OptunaProposals(Searcher):
    """Proposals from the Optuna study `study` over `space` ({name: optuna distribution}), maximising `metric`.
    The config of each Tune trial is the proposal's parameters plus 'optuna_trial', its Optuna trial number."""

    def __init__(self, study, space: dict, metric: str):
        super().__init__(metric=metric, mode="max")
        self.study, self.space = study, space
        self.asked = {}   # Tune trial id -> optuna.Trial

    def suggest(self, trial_id: str) -> dict:
        if trial_id not in self.asked:
            self.asked[trial_id] = self.study.ask(self.space)
        trial = self.asked[trial_id]
        return {**trial.params, "optuna_trial": trial.number}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        from optuna.trial import TrialState

        trial = self.asked.pop(trial_id)
        value = (result or {}).get(self.metric)
        if result and "epoch" in result:
            trial.set_user_attr("epochs", result["epoch"])
        if value is not None:
            self.study.tell(trial, value)
        else:   # a proposal that raised fails; one stopped before its first report is pruned
            self.study.tell(trial, state=TrialState.FAIL if error else TrialState.PRUNED)
