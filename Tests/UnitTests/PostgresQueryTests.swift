import RootcausesPostgres
import Testing

@Suite("PostgresQuery interpolation")
struct PostgresQueryTests {
    @Test func valuesBecomeNumberedParameters() {
        let reporter = "USAID'; DROP TABLE submissions; --"
        let asOf: Int64 = 42
        let query: PostgresQuery = "SELECT seq FROM submissions WHERE reporter = \(reporter) AND seq <= \(asOf)"
        #expect(query.sql == "SELECT seq FROM submissions WHERE reporter = $1 AND seq <= $2")
        #expect(query.binds.texts == [reporter, "42"])
        #expect(query.binds.count == 2)
    }

    @Test func aLiteralWithoutValuesHasNoParameters() {
        let query: PostgresQuery = "SELECT 1"
        #expect(query.sql == "SELECT 1")
        #expect(query.binds.count == 0)
    }

    @Test func castsStayInTheSQL() {
        let codes = ["a", "b c"]
        let day = "2024-01-31"
        let query: PostgresQuery = "SELECT \(codes)::text[], \(day)::date, \(true)::boolean"
        #expect(query.sql == "SELECT $1::text[], $2::date, $3::boolean")
        #expect(query.binds.texts == [#"{"a","b c"}"#, "2024-01-31", "true"])
    }

    @Test func nilBindsNull() {
        let none: [String]? = nil
        let missing: Int64? = nil
        let some: Int64? = 7
        let query: PostgresQuery = "SELECT \(none)::text[], \(missing)::bigint, \(some)::bigint"
        #expect(query.sql == "SELECT $1::text[], $2::bigint, $3::bigint")
        #expect(query.binds.texts == [nil, nil, "7"])
    }

    @Test func arraysOfValuesBindAsOneArray() {
        struct Value {
            let indicator: String
            let estimate: Bool
        }
        let values = [Value(indicator: "x", estimate: true), Value(indicator: "y\"z", estimate: false)]
        let query: PostgresQuery =
            "SELECT * FROM unnest(\(values.map(\.indicator))::text[], \(values.map(\.estimate))::boolean[])"
        #expect(query.sql == "SELECT * FROM unnest($1::text[], $2::boolean[])")
        #expect(query.binds.texts == [#"{"x","y\"z"}"#, #"{"true","false"}"#])
    }

    @Test func theSameCodePathGivesTheSameSQL() {
        // Prepared statements are cached per connection by SQL text: values must not change it.
        func make(_ reporter: String, _ seq: Int64?) -> PostgresQuery { "SELECT \(reporter), \(seq)::bigint" }
        #expect(make("a", 1).sql == make("bbb", nil).sql)
        #expect(make("a", 1) != make("bbb", nil))
    }

    @Test func anAbsentFilterIsTrueAndAPresentOneBindsItsValue() {
        func make(_ countries: [String]?, _ from: String?) -> PostgresQuery {
            """
            SELECT 1 WHERE \(filter: countries, { "country = ANY(\($0)::text[])" }) \
            AND \(filter: from, { "day >= \($0)::date" }) AND seq <= \(Int64(9))
            """
        }
        let none = make(nil, nil)
        #expect(none.sql == "SELECT 1 WHERE true AND true AND seq <= $1")
        #expect(none.binds.texts == ["9"])
        let both = make(["HN", "SV"], "2024-01-01")
        #expect(both.sql == "SELECT 1 WHERE country = ANY($1::text[]) AND day >= $2::date AND seq <= $3")
        #expect(both.binds.texts == [#"{"HN","SV"}"#, "2024-01-01", "9"])
        // The text names the filters present, not their values: one plan per shape.
        #expect(make(["GT"], nil).sql == make(["HN", "SV"], nil).sql)
        #expect(make(["GT"], nil).sql != none.sql)
    }

    @Test func literalsDoubleQuotesAndBackslashes() {
        #expect(PostgresQuery.literal("people") == "E'people'")
        #expect(PostgresQuery.literal("children's") == "E'children''s'")
        #expect(PostgresQuery.literal(#"a\b"#) == #"E'a\\b'"#)
        #expect(PostgresQuery.literal(#"{"x\"y"}"#) == #"E'{"x\\"y"}'"#)
    }

    @Test func unescapedFragmentsAreSplicedAsIs() {
        let columns = ["indicator", "country"].joined(separator: ", ")
        let limit = 5
        let query: PostgresQuery =
            "SELECT \(unescaped: columns) FROM t WHERE n < \(limit) GROUP BY \(unescaped: columns)"
        #expect(query.sql == "SELECT indicator, country FROM t WHERE n < $1 GROUP BY indicator, country")
        #expect(query.binds.texts == ["5"])
    }

    @Test func identifiersAreQuoted() {
        #expect(PostgresQuery.quoteIdentifier("plain") == #""plain""#)
        #expect(PostgresQuery.quoteIdentifier(#"a"b"#) == #""a""b""#)
        #expect(PostgresQuery.quoteIdentifier(#"x"; DROP TABLE t; --"#) == #""x""; DROP TABLE t; --""#)
        #expect(PostgresQuery.quoteIdentifier("") == #""""#)
        let database = #"we"ird"#
        let query: PostgresQuery = "SELECT 1 FROM \(identifier: database) WHERE x = \(database)"
        #expect(query.sql == #"SELECT 1 FROM "we""ird" WHERE x = $1"#)
        #expect(query.binds.texts == [database])
    }

    @Test func unsafeSQLWithExplicitBinds() {
        var binds = PostgresBindings()
        binds.append("a")
        binds.append(nil as Int?)
        let query = PostgresQuery(unsafeSQL: "SELECT $1, $2", binds: binds)
        #expect(query.binds.texts == ["a", nil])
        #expect(query.description == #"SELECT $1, $2 ["\"a\"", "NULL"]"#)
    }
}
