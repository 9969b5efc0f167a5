import pytest

from metad2a.cli import _model_config, data_names, main
from metad2a.parser import build_parser, str2bool
from metad2a.search_spaces import get_search_space

NB201 = get_search_space("nasbench201")
# docs/fidelity.md#nb201-command-lines, verbatim, with what each must mean:
# (model, hs, nz, test, load_epoch, num_gen_arch, data_name)
README_COMMANDS = [
    ("--gpu 0 --model generator --hs 56 --nz 56 --test --load-epoch 400 --num-gen-arch 500 --data-name cifar10",
     ("generator", 56, 56, True, 400, 500, "cifar10")),
    ("--gpu 0 --model predictor --hs 512 --nz 56 --test --num-gen-arch 500 --data-name cifar10",
     ("predictor", 512, 56, True, 20, 500, "cifar10")),
    ("--gpu 0 --model generator --hs 56 --nz 56 --test --load-epoch 400 --num-gen-arch 500 --data-name cifar100",
     ("generator", 56, 56, True, 400, 500, "cifar100")),
    ("--gpu 0 --model predictor --hs 512 --nz 56 --test --num-gen-arch 500 --data-name cifar100",
     ("predictor", 512, 56, True, 20, 500, "cifar100")),
    ("--gpu 0 --model generator --hs 56 --nz 56 --test --load-epoch 400 --num-gen-arch 50 --data-name mnist",
     ("generator", 56, 56, True, 400, 50, "mnist")),
    ("--gpu 0 --model predictor --hs 512 --nz 56 --test --num-gen-arch 50 --data-name mnist",
     ("predictor", 512, 56, True, 20, 50, "mnist")),
    ("--gpu 0 --model generator --hs 56 --nz 56", ("generator", 56, 56, False, 20, 800, None)),
    ("--gpu 0 --model predictor --hs 512 --nz 56", ("predictor", 512, 56, False, 20, 800, None)),
]


@pytest.mark.parametrize("cmd,expected", README_COMMANDS)
def test_readme_commands_mean_what_the_readme_says(cmd, expected):
    args = build_parser(NB201).parse_args(cmd.split())
    got = (args.model_name, args.hs, args.nz, args.test, args.load_epoch, args.num_gen_arch, args.data_name)
    assert got == expected and args.gpu == "0" and args.seed == 333
    mc = _model_config(args, NB201)  # the model the command builds
    assert (mc.hs, mc.nz, mc.nvt, mc.max_n, mc.num_sample) == (expected[1], 56, 7, 8, 20)
    if args.test:
        assert data_names(args, NB201) == (expected[6],)


@pytest.mark.parametrize("model,hs", [("generator", 56), ("predictor", 512)])
def test_hs_defaults_per_model(model, hs):
    assert _model_config(build_parser(NB201).parse_args(["--model", model]), NB201).hs == hs


def test_original_defaults():
    a = build_parser(NB201).parse_args([])
    assert (a.seed, a.gpu, a.save_path, a.data_path, a.save_epoch, a.max_epoch, a.batch_size) == (
        333, "0", "results", "data", 20, 400, 32)
    assert (a.graph_data_name, a.nvt, a.num_sample, a.hs, a.nz, a.load_epoch, a.num_gen_arch, a.train_arch) == (
        "nasbench201", 7, 20, None, 56, 20, 800, True)


def test_aliases_and_bool_rule():
    p = build_parser(NB201)
    assert p.parse_args(["--model_name", "predictor"]).model_name == p.parse_args(["--model", "predictor"]).model_name
    assert p.parse_args(["--batch-size", "4"]).batch_size == p.parse_args(["--batch_size", "4"]).batch_size == 4
    assert [str2bool(v) for v in ("t", "True", "TRUE", "false", "0", "yes")] == [True, True, True, False, False, False]


def test_unknown_and_abbreviated_flags_fail():
    p = build_parser(NB201)
    with pytest.raises(SystemExit):
        p.parse_args(["--no-such-flag"])
    with pytest.raises(SystemExit):
        p.parse_args(["--model", "trainer"])
    with pytest.raises(SystemExit):  # no prefix abbreviation: --data could mean --data-path or --data-name
        p.parse_args(["--data", "x"])


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--gpu", "cpu"], "--model is required"),
        (["--gpu", "cpu", "--model", "generator", "--graph-data-name", "ofa_mbv3"], "not this folder's search space"),
        (["--gpu", "cpu", "--model", "generator", "--nvt", "9"], "--nvt 9 does not fit"),
        (["--gpu", "cpu", "--model", "generator", "--test"], "--test needs --data-name"),
        (["--gpu", "cpu", "--model", "generator", "--num-sample", "0"], "--num-sample must be a positive"),
    ],
)
def test_user_errors_are_one_line(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv, space="nasbench201") == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_missing_data_names_file_and_script(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--gpu", "cpu", "--model", "predictor", "--max-epoch", "1"], space="nasbench201") == 2
    err = capsys.readouterr().err
    assert "meta_train_tasks_predictor.pt: file not found" in err and "get_preprocessed_data.py" in err
    argv = ["--gpu", "cpu", "--model", "generator", "--test", "--load-epoch", "400", "--data-name", "cifar10"]
    assert main(argv, space="nasbench201") == 2
    err = capsys.readouterr().err
    assert "ckpt_400.pt: file not found" in err and "get_files/get_checkpoint.py" in err


def test_console_command(capsys):
    from metad2a.cli import console_main

    assert console_main([]) == 0 and "nb201-info" in capsys.readouterr().out
    assert console_main(["nope"]) == 2
    assert console_main(["nb201-info", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]) == 0
    assert '"num_parameters"' in capsys.readouterr().out
