from __future__ import annotations

import pytest

from workers.db.sqlsplit import split_statements


def texts(sql: str) -> list[str]:
    return [s.text for s in split_statements(sql)]


def test_splits_on_semicolons_and_drops_empty_statements() -> None:
    assert texts("select 1; select 2;;\n  ;") == ["select 1", "select 2"]


def test_semicolons_inside_quotes_comments_and_dollar_bodies_do_not_split() -> None:
    sql = """
    -- a comment; with a semicolon
    select 'a;b', "we;ird", E'it\\'s;';
    /* block; /* nested; */ still comment; */
    create function f() returns int language plpgsql as $body$
    begin
        return 1; -- inner
    end;
    $body$;
    do $$ begin perform 1; end $$;
    """
    result = texts(sql)
    assert len(result) == 3
    assert result[0].endswith("""select 'a;b', "we;ird", E'it\\'s;'""")
    assert "return 1;" in result[1]
    assert result[2] == "do $$ begin perform 1; end $$"


def test_statement_line_numbers_are_one_based() -> None:
    statements = split_statements("select 1;\n\nselect 2;\n")
    assert [s.line for s in statements] == [1, 3]


def test_comment_only_trailer_is_not_a_statement() -> None:
    assert texts("select 1;\n-- the end\n") == ["select 1"]


@pytest.mark.parametrize("sql", ["select 'open", "do $$ begin", "/* never closed"])
def test_unterminated_constructs_are_errors(sql: str) -> None:
    with pytest.raises(ValueError, match="unterminated"):
        split_statements(sql)
