"""Bad configs: exit code 2, the key named, nothing written."""

from __future__ import annotations

import pytest

from nas.cli import main
from nas.config import ConfigError, load_config, parse_config


@pytest.mark.parametrize(
    "text, expected",
    [
        ("search:\n  trails: 3\n", "search.trails: unknown key"),
        ("serch: {}\n", "serch: unknown key"),
        ("search:\n  trials: 0\n", "search.trials"),
        ("search:\n  trials: many\n", "search.trials"),
        ("train:\n  optimizer: rmsprop\n", "train.optimizer: must be 'adam' or 'sgd'"),
        ("space:\n  name: recurrent_cell\n  num_nodes: 99\n", "num_nodes: must be an integer in 1..24"),
        ("space:\n  activations: [tanhh]\n", "unknown unit 'tanhh'"),
        ("space:\n  nodes: 3\n", "unknown option 'nodes' for space 'recurrent_cell'"),
        ("data:\n  name: mnist\n", "unknown dataset 'mnist'"),
        ("stopping:\n  policy: sometimes\n", "stopping.policy: unknown stopping policy 'sometimes'"),
        # every registry checks its own options, before anything is written (issue 14)
        ("stopping:\n  policy: curve\n  options: {treshold: 0.1}\n",
         "stopping.options: unknown option(s) ['treshold'] for stopping policy 'curve'"),
        ("stopping:\n  policy: asha\n  options: {reduction_factor: 1}\n", "stopping.options: asha reduction_factor must be > 1"),
        ("stopping:\n  policy: none\n  options: {grace_period: 2}\n", "unknown option(s) ['grace_period'] for stopping policy 'none'"),
        ("search:\n  sampler: annealing\n", "search.sampler: unknown sampler 'annealing'"),
        ("search:\n  sampler: tpe\n  sampler_options: {n_startup: 3}\n",
         "search.sampler_options: unknown option(s) ['n_startup'] for sampler 'tpe'"),
        ("search:\n  sampler: rea\n  sampler_options: {population: 3}\n", "unknown option(s) ['population'] for sampler 'rea'"),
        ("data:\n  name: digits-seq\n  lenght: 3\n", "unknown option 'lenght' for dataset 'digits-seq'"),
        ("space:\n  name: nb201\n", "space 'nb201' proposes NB201Cell cells, which a search cannot train"),
        ("train:\n  keep_checkpoints: best\n", "train.keep_checkpoints: must be 'last' or 'all'"),
        ("hyper:\n  proxy: order\n", "hyper.proxy: must be 'off' or 'skip'"),
        ("name: 'has spaces'\n", "name"),
        ("- a list\n", "top level must be a mapping"),
        ("search: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_configs_exit_2_naming_the_key(tmp_path, capsys, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    runs = tmp_path / "runs"
    code = main(["search", str(path), "--runs-dir", str(runs)])
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not runs.exists()


def test_missing_config_file(tmp_path, capsys):
    assert main(["search", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_overrides_and_defaults(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("search:\n  trials: 4\n")
    config = load_config(path, **{"search.trials": 7, "seed": 3})
    assert config.name == "x" and config.search.trials == 7 and config.seed == 3
    assert config.space.name == "recurrent_cell"


def test_fingerprint_ignores_budget_but_not_space():
    a = parse_config({"search": {"trials": 5}})
    assert a.fingerprint() == parse_config({"search": {"trials": 50}}).fingerprint()
    assert a.fingerprint() == parse_config({"search": {"trials": 5}, "train": {"keep_checkpoints": "all"}}).fingerprint()
    assert a.fingerprint() != parse_config({"space": {"num_nodes": 3}}).fingerprint()


def test_status_of_unknown_study(tmp_path, capsys):
    assert main(["status", "ghost", "--runs-dir", str(tmp_path)]) == 2
    assert "no study named 'ghost'" in capsys.readouterr().err


def test_config_error_is_a_value_error():
    with pytest.raises(ConfigError):
        parse_config({"seed": -1})
