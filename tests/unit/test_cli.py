"""daemon/cli.py: option parsing and the checks made before start-up (the
process-level behaviour is tests/integration/test_cli.py)."""

import pytest

from pinctrl.daemon import cli


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_defaults():
    args = parse()
    assert args.br_int == "br-int" and args.probe_interval == 0
    assert args.metrics_address is None
    assert cli.db_timeout(args) == 30.0
    assert cli.db_timeout(parse("--db-timeout", "0")) == float("inf")


def test_metrics_address_is_parsed_or_refused(capsys):
    assert parse("--metrics-address", "[::1]:9476").metrics_address == (
        "::1", 9476)
    with pytest.raises(SystemExit):
        parse("--metrics-address", "9476")
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_ssl_remotes_need_every_ssl_option():
    args = parse("--private-key", "/k.pem")
    cli.check_ssl_remotes(args, "tcp:10.0.0.1:6642,unix:/run/sb.sock")
    with pytest.raises(cli.StartupError) as e:
        cli.check_ssl_remotes(args, "tcp:10.0.0.1:6642, ssl:10.0.0.2:6642")
    assert str(e.value) == ("tcp:10.0.0.1:6642, ssl:10.0.0.2:6642: ssl: "
                            "remotes need --certificate, --ca-cert")


def test_unreadable_ssl_file_is_refused_before_start(tmp_path):
    with pytest.raises(ValueError, match=r"^--ca-cert .*/none: not a "
                                         r"readable file$"):
        cli._configure_ssl(parse("--ca-cert", str(tmp_path / "none")))
