import Foundation
import RootcausesJSON
import RootcausesModel
import Testing

@Suite("Catalogue")
struct CatalogueTests {
    @Test func shippedCatalogueLoads() throws {
        let catalogue = try Catalogue.load(path: Fixtures.cataloguePath)
        #expect(catalogue.version == 1)
        #expect(catalogue.indicators.count > 30)
        #expect(catalogue.pillars.map(\.code) == ["I", "II", "III", "IV", "V"])
        #expect(Set(catalogue.indicators.map(\.pillar)) == ["I", "II", "III", "IV", "V"])
        #expect(catalogue.countries.map(\.code) == ["SV", "GT", "HN", "NI", "MX"])
        #expect(catalogue.reporters.count == 10)
        #expect(catalogue.dimensions.map(\.name) == ["sex", "age"])
        #expect(catalogue.allowedValues(ofDimension: "sex") == ["female", "male"])
        #expect(Set(catalogue.indicators.map(\.code)).count == catalogue.indicators.count)
        for indicator in catalogue.indicators {
            #expect(!indicator.countries.isEmpty, "\(indicator.code)")
            #expect(indicator.countries.allSatisfy(catalogue.hasCountry), "\(indicator.code)")
            #expect(
                indicator.dimensions.allSatisfy { catalogue.allowedValues(ofDimension: $0) != nil },
                "\(indicator.code)"
            )
        }
    }

    @Test func shippedIndicatorsReadAsDocumented() throws {
        let catalogue = Fixtures.catalogue
        let jobs = try #require(catalogue.indicator("jobs_created"))
        #expect(jobs.isMoney == false)
        #expect(jobs.precision == 1000)
        #expect(jobs.timeAggregation == .sum)
        #expect(jobs.dimensions == ["sex", "age"])
        #expect(jobs.maximumValue == Decimal(string: "1000000000000")!)
        let usd = try #require(catalogue.indicator("cta_usd_committed"))
        #expect(usd.isMoney)
        #expect(usd.timeAggregation == .latest)
        #expect(usd.precision == 100_000_000)
        #expect(catalogue.indicator("nope") == nil)
        #expect(catalogue.hasReporter("USAID"))
        #expect(!catalogue.hasReporter("usaid"))
    }

    @Test func jsonListsEveryIndicator() throws {
        let json = Fixtures.catalogue.json
        let list = try #require(json["indicators"]?.arrayValue)
        #expect(list.count == Fixtures.catalogue.indicators.count)
        #expect(list.first?["code"] == .string("firms_supported"))
        #expect(list.first?["precision"] == .number("1000"))
        #expect(json["pillars"]?.objectValue?.map(\.0) == ["I", "II", "III", "IV", "V"])
    }

    func brokenMessage(_ text: String) -> String? {
        do {
            _ = try Catalogue.parse(Array(text.utf8))
            return nil
        } catch let error as CatalogueError {
            return error.message
        } catch {
            return "unexpected error \(error)"
        }
    }

    let header = #"""
        "version": 1,
        "pillars": {"I": "One", "II": "Two"},
        "countries": {"SV": "El Salvador", "HN": "Honduras"},
        "reporters": {"USAID": "USAID"},
        "dimensions": {"sex": ["female", "male"]},
        """#

    @Test func validMinimalCatalogue() throws {
        let text =
            "{" + header
            + #""indicators": [{"code": "a1", "name": "A", "unit": "USD", "pillar": "II", "countries": ["HN"], "precision": 100, "max_value": 5000}]}"#
        let catalogue = try Catalogue.parse(Array(text.utf8))
        let a = try #require(catalogue.indicator("a1"))
        #expect(a.isMoney)
        #expect(a.precision == 100)
        #expect(a.maximumValue == 5000)
        #expect(a.timeAggregation == .sum)
        #expect(a.overlap == .none)
    }

    /// The shipped catalogue says, for every indicator, whether agencies' figures may overlap, and why.
    @Test func everyShippedIndicatorDeclaresItsOverlapAndSaysWhy() throws {
        for indicator in Fixtures.catalogue.indicators {
            let description = indicator.description ?? ""
            switch indicator.overlap {
            case .possible:
                #expect(description.contains("Overlap possible: "), "\(indicator.code)")
                #expect(indicator.timeAggregation == .sum, "\(indicator.code)")
            case .none:
                #expect(description.contains("No overlap: "), "\(indicator.code)")
            }
        }
        #expect(Fixtures.catalogue.indicator("jobs_created")?.overlap == .possible)
        #expect(Fixtures.catalogue.indicator("treasury_sanctions")?.overlap == Overlap.none)
        #expect(Fixtures.catalogue.json["indicators"]?[0]?["overlap"] == "possible")
    }

    @Test func brokenCatalogueNamesEveryProblem() throws {
        let text =
            "{" + header + #"""
                "indicators": [
                  {"code": "ok_one", "name": "Fine", "unit": "people", "pillar": "I", "countries": ["SV"], "precision": 10},
                  {"code": "bad_pillar", "name": "B", "unit": "people", "pillar": "VI", "countries": ["SV"]},
                  {"code": "bad_country", "name": "C", "unit": "people", "pillar": "I", "countries": ["SV", "XX"]},
                  {"code": "Bad-Code", "name": "D", "unit": "people", "pillar": "I", "countries": ["SV"]},
                  {"code": "bad_precision", "name": "E", "unit": "people", "pillar": "I", "countries": ["SV"], "precision": 5},
                  {"code": "ok_one", "name": "Again", "unit": "people", "pillar": "I", "countries": ["SV"]}
                ]}
                """#
        let message = try #require(brokenMessage(text))
        #expect(message.contains("indicator bad_pillar has unknown pillar 'VI'"), "\(message)")
        #expect(message.contains("indicator bad_country names unknown country 'XX'"), "\(message)")
        #expect(message.contains("indicators[3].code must be lowercase snake_case"), "\(message)")
        #expect(message.contains("indicator bad_precision precision must be 1, 10, 100, ..."), "\(message)")
        #expect(message.contains("indicator ok_one is defined twice"), "\(message)")
        #expect(message.components(separatedBy: "; ").count == 5, "\(message)")
    }

    @Test(arguments: [
        (#""code": "9lives""#, "code must be lowercase snake_case"),
        (#""code": "", "x": 1"#, "code must be lowercase snake_case"),
        (#""code": "ok", "time_aggregation": "max""#, "time_aggregation 'max'"),
        (#""code": "ok", "dimensions": ["colour"]"#, "unknown dimension 'colour'"),
        (#""code": "ok", "precision": 0.1"#, "precision must be"),
        (#""code": "ok", "precision": 0"#, "precision must be"),
        (#""code": "ok", "max_value": -1"#, "max_value must be a positive number"),
        (#""code": "ok", "overlap": "some""#, "overlap 'some' (none or possible)"),
        (
            #""code": "ok", "time_aggregation": "latest", "overlap": "possible""#,
            "overlap 'possible' needs time_aggregation 'sum'"
        ),
    ])
    func otherIndicatorProblems(_ fields: String, _ expected: String) throws {
        let text =
            "{" + header + #""indicators": [{"name": "N", "unit": "people", "pillar": "I", "countries": ["SV"], "#
            + fields + "}]}"
        let message = try #require(brokenMessage(text))
        #expect(message.contains(expected), "\(message)")
    }

    @Test func missingPartsAreNamed() throws {
        let message = try #require(brokenMessage(#"{"version": 1}"#))
        #expect(message.contains("'pillars' must be an object"), "\(message)")
        #expect(message.contains("'countries' must be an object"), "\(message)")
        #expect(message.contains("'reporters' must be an object"), "\(message)")
        #expect(message.contains("'indicators' must list at least one indicator"), "\(message)")
    }

    @Test func notJSON() throws {
        let message = try #require(brokenMessage(#"{"version": 1,}"#))
        #expect(message.hasPrefix("not valid JSON"), "\(message)")
    }

    @Test func loadNamesTheFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rootcauses-broken-\(UUID().uuidString).json"
        ).path
        try Data(#"{"pillars": {}, "countries": {}, "reporters": {}, "indicators": []}"#.utf8).write(
            to: URL(fileURLWithPath: path)
        )
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try Catalogue.load(path: path)
            Issue.record("a catalogue without indicators loaded")
        } catch let error as CatalogueError {
            #expect(error.message.hasPrefix(path + ": "), "\(error.message)")
            #expect(error.message.contains("at least one indicator"))
        }
        #expect(throws: CatalogueError.self) { try Catalogue.load(path: "/nonexistent/catalogue.json") }
    }
}
