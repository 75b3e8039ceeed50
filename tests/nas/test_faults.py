"""Fault injection and bad input (issue 19): nothing a user does hangs, corrupts or silently
redirects a search. Fast tests here; the real-process ones are in `test_faults_slow.py`."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray.exceptions
import torch
import yaml
from _fake_study import CHECKPOINT, TASK, fake_run

from nas.cli import main
from nas.config import ConfigError, load_config, parse_config
from nas.locate import CONFIG_ATTR
from nas.ray_bridge import describe_crash
from nas.study import StorageUnavailable, make_storage, open_study
from search_spaces import elman
from workers import trainable
from workers.run_dir import TRAINER_FILE
from workers.safe_yaml import YamlInputError, load_yaml
from workers.settings import TrainConfig
from workers.trial import Cost, TrialConfig

@pytest.fixture(autouse=True)
def _keep_ray_auth_mode(monkeypatch):
    """`nas search` chooses Ray's authentication mode for the Ray it starts (`nas.cluster`), which
    Ray then keeps for the process; these in-process calls start no Ray and must not choose it for
    the Ray clusters of later tests."""
    import nas.cli

    monkeypatch.setattr(nas.cli, "use_cluster_token", lambda address: None)


# ---- YAML limits ------------------------------------------------------------------------------------
BOMB = "space:\n  hidden_sizes: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)
)  # 9^9 elements once expanded


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="elements once its aliases are expanded"):
        load_config(path)
    assert time.monotonic() - start < 2


def test_a_huge_list_is_refused_by_its_size_before_parsing(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("space:\n  hidden_sizes: [" + ", ".join(["8"] * 400_000) + "]\n")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="bytes, more than"):
        load_config(path)
    assert time.monotonic() - start < 1


@pytest.mark.parametrize(
    "text, expected",
    [
        (b"name: x\nseed: \xff\xfe\n", "not UTF-8"),
        (b"a: " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"a: &a [*a]\n", "recursive"),
        (b"a: !!python/object:os.system x\n", "not valid YAML"),
    ],
)
def test_bad_yaml_files_name_what_is_wrong(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text)
    with pytest.raises(YamlInputError, match=expected):
        load_yaml(path)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_ordinary_yaml_with_small_anchors_still_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: ok\nspace: {name: recurrent_cell, hidden_sizes: &h [8, 16]}\nhyper: {}\n")
    assert load_config(path).space.options()["hidden_sizes"] == [8, 16]


def test_a_bare_on_or_off_is_a_choice_not_a_boolean(tmp_path):
    """YAML 1.1 reads on / off as true / false; a config's on / off are choices (the forget gate,
    hyper.proxy), while yes / true stay booleans."""
    path = tmp_path / "onoff.yaml"
    path.write_text("name: onoff\nspace: {name: gated, forget_gates: [on, coupled]}\n"
                    "hyper: {enabled: yes, proxy: off, warm_start: true}\n")
    assert load_yaml(path)["space"]["forget_gates"] == ["on", "coupled"]
    config = load_config(path)
    assert config.space.make().forget_gates == ("on", "coupled")
    assert (config.hyper.proxy, config.hyper.enabled, config.hyper.warm_start) == ("off", True, True)


# ---- a run directory is its study -------------------------------------------------------------------
def _recorded(tmp_path: Path):
    run = fake_run(tmp_path)
    run.study.set_user_attr(CONFIG_ATTR, run.config.to_dict())
    return run


def test_a_renamed_run_directory_still_finds_its_study(tmp_path, capsys):
    run = _recorded(tmp_path)
    renamed = run.runs_dir / "renamed"
    run.run_dir.rename(renamed)
    assert main(["status", "renamed", "--runs-dir", str(run.runs_dir)]) == 0
    captured = capsys.readouterr()
    assert "study fake: 6 trials" in captured.out and "renamed" in captured.err
    out = tmp_path / "cells"
    assert main(["export", "renamed", "--trial", "0", "--out", str(out), "--format", "json,torch",
                 "--runs-dir", str(run.runs_dir)]) == 0
    assert (out / "trial_0" / "weights.pt").is_file()


@pytest.mark.parametrize("edit", ["seed: 1\n", "minimal"])
def test_an_edited_config_is_refused_naming_what_changed(tmp_path, capsys, edit):
    run = _recorded(tmp_path)
    config_file = run.run_dir / "config.yaml"
    if edit == "minimal":
        config_file.write_text("seed: 1\n")  # the whole file replaced: no name, default everything
    else:
        data = yaml.safe_load(config_file.read_text())
        config_file.write_text(yaml.safe_dump({**data, "seed": 1}))
    db = (run.run_dir / "study.db").read_bytes()
    argv = ["--runs-dir", str(run.runs_dir)]
    assert main(["resume", "fake", *argv]) == 2
    err = capsys.readouterr().err
    assert "was edited since study 'fake' was created" in err and "seed" in err
    assert main(["export", "fake", "--trial", "0", "--out", str(tmp_path / "o"), *argv]) == 2
    assert not (tmp_path / "o").exists()
    assert (run.run_dir / "study.db").read_bytes() == db and not (run.runs_dir / "config").exists()


def test_edits_that_only_change_how_the_search_runs_are_followed(tmp_path):
    from nas.locate import locate_study, study_config

    run = _recorded(tmp_path)
    config_file = run.run_dir / "config.yaml"
    data = yaml.safe_load(config_file.read_text())
    data["search"]["trials"] = 9
    config_file.write_text(yaml.safe_dump(data))
    location = locate_study("fake", run.runs_dir)
    assert study_config(location, run.study).search.trials == 9


# ---- every subcommand over bad input: one line, exit 2, no traceback -----------------------------------
def _bad_inputs(tmp: Path, runs: str) -> list[list[str]]:
    blocker = tmp / "a_file"  # a path under a regular file cannot be created, even as root
    blocker.write_text("x")
    bad_utf8 = tmp / "latin1.yaml"
    bad_utf8.write_bytes(b"name: caf\xe9\n")
    deep = tmp / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    latin_cell = tmp / "cell.json"
    latin_cell.write_bytes(b'{"caf\xe9": 1}')
    big = tmp / "big_cell.json"
    big.write_text(elman(hidden_size=1_000_000_000).to_json())
    good_config = tmp / "good.yaml"
    good_config.write_text("name: good\n")
    r = ["--runs-dir", runs]
    return [
        ["search", str(bad_utf8)], ["search", str(tmp / "missing.yaml")], ["search", str(blocker / "x.yaml")],
        ["search", str(good_config), "--name", "../escape"],
        ["search", str(good_config), "--runs-dir", str(blocker / "runs")],
        ["resume", "missing", *r], ["resume", "../../etc", *r], ["resume", "fake", "--trials", "0", *r],
        ["status", "missing", *r], ["status", "bad/name", *r],
        ["export", "missing", "--trial", "0", "--out", str(tmp / "o"), *r],
        ["export", "fake", "--trial", "0", "--out", str(blocker / "sub"), *r],
        ["export", "fake", "--trial", "1", "--out", str(tmp / "o"), *r],  # no trained weights
        ["export", "fake", "--trial", "0", "--out", str(tmp / "o"), "--format", "pdf", *r],
        ["import", str(bad_utf8)], ["import", str(latin_cell)], ["import", str(deep)],
        ["import", str(tmp / "missing.json")], ["import", str(blocker)],
        ["import", str(big), "--config", str(good_config)],
        ["pareto", "missing", *r], ["pareto", "fake", "--csv", str(blocker / "front.csv"), *r],
        ["pareto", "fake", "--plot", str(blocker / "sub" / "front.png"), *r],
        ["pareto", "fake", "--csv", str(tmp), *r],
        ["report", "missing", *r], ["report", "fake", "--out", str(blocker / "report"), *r],
        ["hyper", "train", str(bad_utf8), "--out", str(tmp / "h.pt")],
        ["hyper", "train", str(good_config), "--out", str(blocker / "h.pt")],
        ["hyper", "eval", str(tmp / "h.pt"), str(bad_utf8)],
        ["hyper", "eval", str(blocker), str(good_config)],  # not a checkpoint
        ["benchmark", "--proposers", "nope"],
    ]


def test_outputs_go_into_folders_created_for_them(tmp_path, capsys):
    run = _recorded(tmp_path)
    front = tmp_path / "new" / "deeper" / "front.csv"
    assert main(["pareto", "fake", "--csv", str(front), "--runs-dir", str(run.runs_dir)]) == 0
    assert front.read_text().startswith("trial")


def test_every_subcommand_refuses_bad_input_in_one_line(tmp_path, capsys):
    run = _recorded(tmp_path)
    cases = _bad_inputs(tmp_path, str(run.runs_dir))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for argv in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, code, err)
        assert "Traceback" not in err and err.startswith("error:"), (argv, err)
        assert len(err.strip().splitlines()) <= 3, (argv, err)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    created = [p for p in after if p not in before]
    assert created == [], created  # nothing written (besides the test's own input files)


# ---- checkpoints, curves, crashes ---------------------------------------------------------------------
class _FakeTune:
    """What `train_candidate` uses of ``ray.tune``, outside a Ray session: reports are kept, and
    checkpoints copied to ``keep`` (Ray's own would be uploaded)."""

    def __init__(self, keep: Path) -> None:
        self.reports: list[dict] = []
        self.keep = keep
        outer = self

        class Checkpoint:
            @staticmethod
            def from_directory(directory: str) -> Path:
                target = outer.keep / f"checkpoint_{len(outer.reports):06d}"
                shutil.copytree(directory, target)
                return target

        self.Checkpoint = Checkpoint

    def get_checkpoint(self) -> None:
        return None

    def report(self, metrics: dict, checkpoint: Path | None = None) -> None:
        self.reports.append(dict(metrics))


def _train(monkeypatch, keep: Path, *, epochs: int, resume: str | None) -> _FakeTune:
    fake = _FakeTune(keep)
    keep.mkdir()
    monkeypatch.setattr(trainable, "tune", fake)
    monkeypatch.setattr(trainable, "ray", SimpleNamespace(get_runtime_context=lambda: SimpleNamespace(
        get_node_id=lambda: "node")))
    config = TrialConfig(spec=elman(hidden_size=8).to_json(), data={"name": "digits-seq"},
                         train=TrainConfig(epochs=epochs, batch_size=256), seed=0, number=0, cost=Cost(0, 0),
                         resume=resume)
    trainable.train_candidate(config.to_dict())
    return fake


def test_a_continued_trial_whose_checkpoint_is_gone_restarts_from_scratch(monkeypatch, tmp_path):
    fake = _train(monkeypatch, tmp_path / "ckpts", epochs=2, resume=str(tmp_path / "deleted" / "checkpoint_000003"))
    assert [r["epoch"] for r in fake.reports] == [1, 2] and not any("error" in r for r in fake.reports)
    assert "restarted from scratch" in fake.reports[-1]["restart"] and "deleted" in fake.reports[-1]["restart"]


def test_a_resumed_trial_reports_its_whole_curve(monkeypatch, tmp_path):
    first = _train(monkeypatch, tmp_path / "first", epochs=3, resume=None)
    whole = first.reports[-1]["curve"]
    assert len(whole) == 3 and (tmp_path / "first" / "checkpoint_000000" / TRAINER_FILE).is_file()
    # continue from the checkpoint after epoch 1: the curve still holds epoch 1
    resumed = _train(monkeypatch, tmp_path / "second", epochs=3, resume=str(tmp_path / "first" / "checkpoint_000000"))
    assert [r["epoch"] for r in resumed.reports] == [2, 3]
    assert resumed.reports[-1]["curve"][0] == whole[0] and len(resumed.reports[-1]["curve"]) == 3
    assert "restart" not in resumed.reports[-1]


def test_an_oom_killed_trial_says_so():
    oom = ray.exceptions.OutOfMemoryError("Task was killed due to the node running low on memory.\nMemory on the node")
    assert describe_crash(oom).startswith("killed (out of memory?)")
    assert "running low on memory" in describe_crash(oom)
    died = ray.exceptions.ActorDiedError()
    assert describe_crash(died).startswith("killed (out of memory?)")
    assert describe_crash(None) == "trial process failed (see Ray's trial log)"
    assert describe_crash(ValueError("bad")).startswith("trial process failed")


def test_the_searcher_records_why_a_process_died(tmp_path):
    from nas.ray_bridge import StudySearcher, TrialCrashes
    from nas.trial_loop import TrialLoop

    config = parse_config({"name": "s", "space": {"name": "recurrent_cell", "hidden_sizes": [8]},
                           "search": {"trials": 2}})
    study = open_study("s", f"sqlite:///{tmp_path / 's.db'}")
    template = TrialConfig(spec="", data={"name": "digits-seq"}, train=TrainConfig(epochs=2), seed=0,
                           number=-1, cost=Cost(0, 0))
    searcher = StudySearcher(TrialLoop(study, config.space.make(), TASK, budget=2), template)
    searcher.suggest("t1")
    from ray import cloudpickle

    error_file = tmp_path / "error.pkl"
    error_file.write_bytes(cloudpickle.dumps(ray.exceptions.OutOfMemoryError(
        "Task was killed due to the node running low on memory.")))
    ray_trial = SimpleNamespace(trial_id="t1", pickled_error_file=str(error_file))
    TrialCrashes(searcher).on_trial_start(iteration=0, trials=[], trial=ray_trial)
    searcher.on_trial_complete("t1", error=True)
    (trial,) = study.get_trials()
    assert trial.state.name == "FAIL" and trial.user_attrs["error"].startswith("killed (out of memory?)")


# ---- the storage going away ---------------------------------------------------------------------------
def test_the_driver_waits_for_a_lost_storage_then_gives_up(tmp_path):
    home = tmp_path / "db"
    home.mkdir()
    storage = make_storage(f"sqlite:///{home / 'study.db'}")
    storage.retry_s = 5
    study = open_study("s", storage)
    study.set_user_attr("kept", 1)
    away = tmp_path / "away"

    def lose() -> None:
        home.rename(away)
        storage.engine.dispose()  # every connection must reconnect, and cannot

    lose()
    threading.Timer(1.0, lambda: away.rename(home)).start()
    start = time.monotonic()
    assert study.user_attrs["kept"] == 1  # waited for it to come back
    assert 0.9 < time.monotonic() - start < 5
    lose()
    start = time.monotonic()
    with pytest.raises(StorageUnavailable, match=r"lost the study's storage sqlite:///.*study.db for \d+ s"):
        study.ask()
    assert time.monotonic() - start < 7
    with pytest.raises(StorageUnavailable):  # gave up: later calls fail at once
        study.get_trials()
    away.rename(home)


def test_a_lost_storage_exits_3_in_one_line_naming_nas_resume(tmp_path, monkeypatch, capsys):
    import nas.search

    config = tmp_path / "lost.yaml"
    config.write_text("name: lost\nspace: {name: recurrent_cell, hidden_sizes: [8]}\n")

    def lost(*args, **kwargs):
        try:
            raise StorageUnavailable("postgresql://u:***@db/nas", 60, "server closed the connection")
        except StorageUnavailable as exc:
            raise RuntimeError("Tune run failed") from exc  # Ray Tune wraps what its callbacks raise

    monkeypatch.setattr(nas.search, "run_search", lost)
    assert main(["search", str(config), "--runs-dir", str(tmp_path / "runs")]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err
    assert "postgresql://u:***@db/nas" in err and "`nas resume lost` continues" in err


def test_export_of_a_trial_whose_checkpoint_was_deleted_is_refused(tmp_path, capsys):
    run = _recorded(tmp_path)
    shutil.rmtree(run.run_dir / CHECKPOINT)
    argv = ["export", "fake", "--trial", "0", "--out", str(tmp_path / "o"), "--runs-dir", str(run.runs_dir)]
    assert main(argv) == 2
    assert "trial(s) 0: no trained weights" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main([*argv, "--format", "json,torch", "--initial-weights"]) == 0
    manifest = (tmp_path / "o" / "trial_0" / "manifest.json").read_text()
    assert '"weights": "initial' in manifest


def test_sigterm_is_handled_like_ctrl_c(monkeypatch, capsys):
    """In-process: a SIGTERM during a command ends it as Ctrl-C would, with exit 143, and the
    caller's own SIGTERM handler is back afterwards."""
    import signal

    import nas.cli

    def handler(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal interrupts this
        return 0

    parser = nas.cli.build_parser()
    parser._subparsers._group_actions[0].choices["resume"].set_defaults(handler=handler)
    monkeypatch.setattr(nas.cli, "build_parser", lambda: parser)
    before, sigint = signal.getsignal(signal.SIGTERM), signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        start = time.monotonic()
        assert main(["resume", "x"]) == 143
        assert time.monotonic() - start < 4
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGINT, sigint)
    assert "interrupted; the study is saved and `nas resume x` continues it" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, interrupted, lost",
    [
        (["search", "c.yaml"], "`nas resume NAME` continues it", "`nas resume NAME` continues the search"),
        (["status", "x"], "interrupted\n", "run the command again"),
        (["hyper", "train", "c.yaml", "--out", "h.pt"], "`nas hyper train c.yaml --out h.pt --resume` continues",
         "run the command again"),
    ],
)
def test_ctrl_c_and_a_lost_storage_say_what_continues_each_command(monkeypatch, capsys, argv, interrupted, lost):
    """Exit 130 and 3 name `nas resume` only for the commands it continues."""
    import nas.cli

    def stopped(args):
        raise KeyboardInterrupt

    def lost_storage(args):
        raise StorageUnavailable("sqlite:///x.db", 60, "database is locked")

    for handler, code, said in ((stopped, 130, interrupted), (lost_storage, 3, lost)):
        parser = nas.cli.build_parser()
        monkeypatch.setattr(nas.cli, "build_parser", lambda: parser)
        commands = parser._subparsers._group_actions[0].choices
        target = commands[argv[0]]
        if argv[0] == "hyper":
            target = target._subparsers._group_actions[0].choices["train"]
        target.set_defaults(handler=handler)
        assert main(argv) == code
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err


def test_recovery_finds_checkpoints_in_a_renamed_directory_or_says_it_restarts(tmp_path):
    from nas.study import recover_trials, running_trials
    from workers.run_dir import RunDir

    run = RunDir(tmp_path / "renamed")
    study = open_study("s", f"sqlite:///{tmp_path / 's.db'}")
    for number in (0, 1):
        trial = study.ask()
        trial.suggest_int("x", 0, 9)
        trial.set_user_attr("spec", "{}")
        trial.set_user_attr("artifacts", str(tmp_path / "old" / "ray" / f"trial_{number}"))  # moved away
    (run.root / "ray" / "trial_0" / "checkpoint_000002").mkdir(parents=True)
    torch.save({}, run.root / "ray" / "trial_0" / "checkpoint_000002" / TRAINER_FILE)  # a whole checkpoint
    assert recover_trials(study, running_trials(study), run) == [0, 1]
    continued = {t.user_attrs["resumed_from"]: t for t in study.get_trials() if "resumed_from" in t.user_attrs}
    assert continued[0].user_attrs["resume_checkpoint"] == str(run.root / "ray" / "trial_0" / "checkpoint_000002")
    assert "restart" not in continued[0].user_attrs
    assert continued[1].user_attrs["restart"].startswith("restarted from scratch: no checkpoint of trial 1")


# ---- what a kill leaves behind ----------------------------------------------------------------------
def test_a_half_written_checkpoint_is_never_picked_to_continue_from(tmp_path):
    """Ray copies a checkpoint into place file by file: a process killed meanwhile leaves the newest
    folder with its trainer file cut short, or missing. Recovery continues from the one before."""
    from nas.study import latest_checkpoint

    trial = tmp_path / "trial_0"
    for epoch in range(3):
        (trial / f"checkpoint_{epoch:06d}").mkdir(parents=True)
        torch.save({"epoch": epoch, "w": torch.randn(256)}, trial / f"checkpoint_{epoch:06d}" / TRAINER_FILE)
    assert latest_checkpoint(trial) == trial / "checkpoint_000002"
    newest = trial / "checkpoint_000002" / TRAINER_FILE
    newest.write_bytes(newest.read_bytes()[:-1])
    assert latest_checkpoint(trial) == trial / "checkpoint_000001"
    (trial / "checkpoint_000001" / TRAINER_FILE).unlink()  # the folder made, the file not yet copied
    assert latest_checkpoint(trial) == trial / "checkpoint_000000"
    assert torch.load(latest_checkpoint(trial) / TRAINER_FILE)["epoch"] == 0


def test_a_run_directory_killed_before_its_study_existed_says_that_resume_starts_it(tmp_path, capsys):
    """A kill between writing config.yaml and creating the study leaves the directory with its config
    alone: `nas status` says `nas resume NAME` starts it (which `test_kill_matrix` runs); once the
    directory holds trial folders, no study is plainly missing (resume would not start it afresh)."""
    runs = tmp_path / "runs"
    run = runs / "early"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: early\nspace: {name: recurrent_cell, hidden_sizes: [8]}\n")
    assert main(["status", "early", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "holds no study yet" in err and "`nas resume early` starts it" in err
    (run / "ray" / "trial_0").mkdir(parents=True)
    assert main(["resume", "early", "--runs-dir", str(runs)]) == 2
    assert "no study named 'early'" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "ray"]  # nothing written
