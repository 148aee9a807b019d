import Foundation
import RootcausesJSON
import RootcausesModel
import Testing

@Suite("DHIS2 mapping")
struct DHIS2MappingTests {
    static var mappingPath: String {
        Fixtures.packageRoot.appendingPathComponent("Deploy/config/dhis2-mapping.json").path
    }

    @Test func periodsBecomeDHIS2PeriodIdsAndBack() throws {
        let cases: [(String, String)] = [
            ("FY2023Q1", "2022Q4"), ("2023Q1", "2023Q1"), ("2022-10", "202210"), ("2022", "2022"),
            ("FY2023", "2022Oct"),
        ]
        for (ours, theirs) in cases {
            let period = try #require(Period.parse(ours))
            #expect(DHIS2Mapping.periodID(period) == theirs)
            #expect(DHIS2Mapping.period(ofID: theirs) == period)
        }
        // A range DHIS2 has no period type for, and ids we do not take.
        let odd = Period(start: Day(year: 2022, month: 1, day: 1), end: Day(year: 2022, month: 6, day: 30))
        #expect(DHIS2Mapping.periodID(odd) == nil)
        for id in ["2022W5", "2022S1", "2022April", "20221", ""] { #expect(DHIS2Mapping.period(ofID: id) == nil) }
    }

    @Test func theShippedMappingCoversTheCatalogue() throws {
        let mapping = try DHIS2Mapping.load(path: Self.mappingPath, catalogue: Fixtures.catalogue)
        for indicator in Fixtures.catalogue.indicators {
            let id = try #require(mapping.dataElements[indicator.code])
            #expect(DHIS2Mapping.isUID(id))
            #expect(mapping.indicator(ofDataElement: id) == indicator.code)
        }
        #expect(mapping.categoryOptionCombos[""] == "HllvX50cXC0")
        let female15 = try #require(mapping.categoryOptionCombos["age=15-19;sex=female"])
        #expect(
            mapping.cell(ofCategoryOptionCombo: female15)?.map { "\($0.0)=\($0.1)" } == ["age=15-19", "sex=female"]
        )
    }

    @Test func aMappingWithGapsOrBadIdsIsRefusedWithEveryProblem() throws {
        var json = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: Self.mappingPath))))
        var elements = json["data_elements"]?.objectValue ?? []
        elements.removeAll { $0.0 == "jobs_created" }
        elements.append(("not_an_indicator", "Rabcdefghij"))
        elements[0].1 = "1notAUid"
        json = json.setting("data_elements", to: .object(elements))
        #expect {
            try DHIS2Mapping.parse(Array(json.serialized.utf8), catalogue: Fixtures.catalogue)
        } throws: { error in
            let message = (error as? DHIS2MappingError)?.message ?? ""
            return message.contains("no UID for indicator jobs_created")
                && message.contains("not_an_indicator: no such indicator")
                && message.contains("not a DHIS2 UID")
        }
    }
}
