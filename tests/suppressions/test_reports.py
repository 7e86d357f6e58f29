"""DSNs and abuse reports from real mail servers (tests/samples/dsn/README.md) read as each
server wrote them: the failed recipient, its status and what ulak makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ulak.suppressions.reports import Failure, Report, classify, parse
from ulak.suppressions.verp import tag_of, tag_of_address, tags_in, verifies

SAMPLES = Path(__file__).parent.parent / "samples" / "dsn"


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.eml").read_bytes()


EXPECTED = {
    "postfix-01": Report(
        "dsn",
        (
            Failure(
                "r@p351355.pool.example.ne.jp",
                "5.1.1",
                'procmail: Couldn\'t create "/var/spool/mail/neko" id: r.example.org: No such user',
                "hard",
            ),
        ),
        "",
        "",
        (),
        (),
    ),
    "postfix-05": Report(
        "dsn",
        (
            Failure(
                "kijitora@example.org",
                "4.1.1",
                "450 4.1.1 <kijitora@example.org>: Recipient address rejected: User unknown in "
                "virtual alias table",
                "soft",
            ),
        ),
        "",
        "",
        (),
        ("<FFFFFFFF.0000000@example.co.jp>",),
    ),
    # Exim's text-only bounce: a 5.7.0 refusal is the sender's problem, not the address's.
    "exim-01": Report(
        "dsn",
        (
            Failure(
                "kijitora@example.ed.jp",
                "5.7.0",
                "host mx.example.jp [192.0.2.20]: 550 5.7.0 <shironeko@example.jp>... Please use "
                "the smtp server of your ISP.",
                "blocked",
            ),
        ),
        "",
        "",
        (),
        ("<E1P1ce6-000Egt-GZ@e1.example.org>", "<hogeuoiuadogalhg.dg9i09@example.jp>"),
    ),
    "exim-29": Report(
        "dsn",
        (
            Failure(
                "kijitora@example.co.jp",
                "5.0.0",
                "550 Bad SPF records for [example.org:192.0.2.2], see http://spf.pobox.com/",
                "hard",
            ),
        ),
        "",
        "",
        (),
        ("<EEEEEEE-222222-00@example.co.jp>",),
    ),
    "gmail-01": Report(
        "dsn",
        (
            Failure(
                "userunknown@example.jp",
                "5.1.1",
                "550 5.1.1 <userunknown@example.jp>... User Unknown",
                "hard",
            ),
        ),
        "",
        "",
        (),
        ("<D992C2C3-F175-4C4D-97E2-53A90E4E5BF5@gmail.com>",),
    ),
    "office365-11": Report(
        "dsn",
        (
            Failure(
                "kijitora@cr3.neko.nyaan.jp",
                "5.1.1",
                "550 5.1.1 <kijitora@cr3.neko.nyaan.jp>... User Unknown",
                "hard",
            ),
        ),
        "",
        "",
        (),
        ("<SLXP216MB0381A4F513CF42F0FCDA0E2FA9250@SLXP216MB0381.KORP216.PROD.OUTLOOK.COM>",),
    ),
    # A full mailbox may be emptied: a soft bounce.
    "outlook-01": Report(
        "dsn",
        (
            Failure(
                "kijitora@example.jp",
                "5.2.2",
                "550 5.2.2 <kijitora@example.jp>... Mailbox Full",
                "soft",
            ),
        ),
        "",
        "",
        (),
        ("<BLU436-SMTP6645ECA6E7FEFFE86D040BBA770@phx.gbl>",),
    ),
    "arf-01": Report("arf", (), "abuse", "", (), ()),
    "arf-02": Report(
        "arf",
        (),
        "abuse",
        "this-local-part-does-not-exist-on-yahoo@yahoo.com",
        (),
        ("<000000000000000000000000.smtp@example.com>",),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_is_read_as_its_server_wrote_it(name: str) -> None:
    assert parse(sample(name)) == EXPECTED[name]


def test_a_tag_in_the_returned_headers_is_found() -> None:
    tag = tag_of(42, "secret")
    raw = sample("gmail-01").replace(
        b"Subject: TEST FROM GMAIL.COM",
        b"Subject: TEST FROM GMAIL.COM\nX-Ulak-Message: " + tag.encode(),
    )
    report = parse(raw)
    assert report is not None
    assert report.tags == ((42, tag.partition(".")[2]),)


def test_mail_that_is_no_report_is_none() -> None:
    assert parse(b"From: someone@example.com\nSubject: hello\n\nJust a reply.\n") is None


def test_status_codes_say_hard_soft_or_blocked() -> None:
    assert [
        classify("5.1.1"),
        classify("5.2.2"),
        classify("5.7.1"),
        classify("4.4.1"),
        classify("2.0.0"),
        classify(None, 550),
        classify(None, 451),
        classify(None, None),
    ] == ["hard", "soft", "blocked", "soft", None, "hard", "soft", None]


def test_verp_tags_verify_only_with_their_secret() -> None:
    tag = tag_of(7, "s1")
    (found,) = tags_in(f"bounce+{tag}@bounces.example")
    assert found[0] == 7
    assert verifies(7, found[1], "s1")
    assert not verifies(7, found[1], "s2")
    assert not verifies(8, found[1], "s1")
    assert tag_of_address(f"bounce+{tag}@Bounces.Example", "bounces.example") == found
    assert tag_of_address(f"bounce+{tag}@elsewhere.example", "bounces.example") is None
    assert tag_of_address("postmaster@bounces.example", "bounces.example") is None
