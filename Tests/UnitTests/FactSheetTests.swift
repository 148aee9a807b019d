import Foundation
import RootcausesJSON
import RootcausesModel
import Testing

@Suite("FactSheetTemplate")
struct FactSheetTests {
    let catalogue = Fixtures.catalogue

    func shippedText() throws -> String {
        try String(contentsOfFile: Fixtures.factSheetPath, encoding: .utf8)
    }

    func shipped() throws -> FactSheetTemplate {
        try FactSheetTemplate.load(path: Fixtures.factSheetPath, catalogue: catalogue)
    }

    func d(_ text: String) -> Decimal { Decimal(string: text)! }

    /// Fixed totals by indicator code; every other indicator totals 1,000,000 (exact, not estimated).
    func totals(_ placeholder: FactSheetPlaceholder) -> NumberTotal {
        switch placeholder.indicator {
        case "firms_supported": return NumberTotal(exact: d("7950"), estimate: false, submissionCount: 2)
        case "jobs_created": return NumberTotal(exact: d("90412"), estimate: false, submissionCount: 1)
        case "msme_financing_usd": return NumberTotal(exact: d("179000000"), estimate: false, submissionCount: 1)
        case "cta_companies_committed": return NumberTotal(exact: d("47"), estimate: true, submissionCount: 1)
        case "cta_usd_committed": return NumberTotal(exact: d("4236000000"), estimate: false, submissionCount: 2)
        case "labor_officials_trained": return NumberTotal(exact: d("1234"), estimate: false, submissionCount: 1)
        case "commerce_delegation_participants": return NumberTotal(exact: d("74"), estimate: false, submissionCount: 0)
        case "commerce_delegation_companies": return NumberTotal(exact: d("0"), estimate: false, submissionCount: 0)
        case "vaccine_doses_delivered": return NumberTotal(exact: d("17213480"), estimate: false, submissionCount: 1)
        case "humanitarian_usd": return NumberTotal(exact: d("419742000"), estimate: false, submissionCount: 1)
        default: return NumberTotal(exact: d("1000000"), estimate: false, submissionCount: 0)
        }
    }

    // MARK: The shipped template

    @Test func shippedTemplateParses() throws {
        let template = try shipped()
        #expect(
            template.title
                == "FACT SHEET: Update on the U.S. Strategy for Addressing the Root Causes of Migration in Central America"
        )
        #expect(template.highlights.count == 20)
        #expect(template.highlights.first?.heading == "Creating Opportunities")
        #expect(template.highlights.last?.heading == "Providing Robust Humanitarian Assistance")
        #expect(template.highlights.map(\.heading).allSatisfy { !$0.hasSuffix(":") && !$0.contains("*") })
        #expect(template.preamble.count == 3)
        #expect(template.closing.isEmpty)
        #expect(template.placeholders.count == 36)
        #expect(Set(template.placeholders.map(\.indicator)).count == 36)
    }

    @Test func shippedPlaceholderOptions() throws {
        let byCode = Dictionary(uniqueKeysWithValues: try shipped().placeholders.map { ($0.indicator, $0) })
        let labor = try #require(byCode["labor_officials_trained"])
        #expect(labor.countries == ["HN"])
        #expect(labor.reporters == ["DOL"])
        #expect(labor.words.above == "over")
        #expect(labor.words.below == "nearly")
        let companies = try #require(byCode["cta_companies_committed"])
        #expect(companies.words.estimate == "approximately")
        #expect(companies.countries == nil)
        #expect(companies.reporters == nil)
        #expect(byCode["agriculture_usd_leveraged"]?.countries == ["GT", "HN"])
        #expect(byCode["treasury_sanctions"]?.reporters == ["TREASURY"])
        #expect(byCode["firms_supported"]?.precision == nil)
        #expect(byCode["firms_supported"]?.bare == false)
    }

    @Test func renderedTextCarriesThePhrases() throws {
        let template = try shipped()
        let sheet = template.render(date: Day(year: 2023, month: 2, day: 15), catalogue: catalogue, total: totals)
        #expect(sheet.title == template.title)
        #expect(sheet.preamble.first == "**February 2023**")
        #expect(sheet.highlights.count == 20)
        #expect(
            sheet.highlights[0].text
                == "U.S. Government support for nearly 8,000 private sector firms in northern Central America has helped create and sustain more than 90,000 jobs. Additionally, U.S. efforts have enabled micro and small businesses to access $179 million in financing to promote economic recovery in the region."
        )
        #expect(
            sheet.highlights[1].text.hasPrefix(
                "In response to the Vice President’s Call to Action for Northern Central America, approximately 47 companies and organizations have committed to invest more than $4.2 billion to strengthen"
            )
        )
        #expect(sheet.highlights[2].text.contains("in Honduras, over 1,200 government officials have been trained"))
        #expect(
            sheet.highlights[3].text
                == "The U.S. Department of Commerce led a high-level delegation to the region to explore business opportunities, which included more than 70 participants representing 0 U.S. companies from 1,000,000 states, the District of Columbia, and Puerto Rico."
        )
        #expect(sheet.highlights[7].text.contains("has delivered more than 17 million vaccine doses"))
        #expect(sheet.highlights[19].text.contains("also provided nearly $420 million in humanitarian assistance"))
        #expect(!sheet.markdown.contains("{{"))
        #expect(sheet.markdown.hasPrefix("# FACT SHEET: Update on the U.S. Strategy"))
        #expect(sheet.markdown.contains("\n\n**February 2023**\n\n"))
        #expect(
            sheet.markdown.contains(
                "\n\n- **Creating Opportunities:** U.S. Government support for nearly 8,000 private"
            )
        )
        #expect(sheet.lead.hasPrefix("Vice President Harris continues to lead"))
        #expect(!sheet.lead.contains("Highlights to date include"))
    }

    @Test func renderedJSONCarriesExactRoundedAndQualifier() throws {
        let sheet = try shipped().render(date: Day(year: 2023, month: 2, day: 15), catalogue: catalogue, total: totals)
        let json = sheet.json
        #expect(json["title"] == .string(sheet.title))
        #expect(json["date"] == .string("2023-02-15"))
        #expect(json["lead"]?.stringValue?.hasPrefix("Vice President Harris") == true)
        let highlights = try #require(json["highlights"]?.arrayValue)
        #expect(highlights.count == 20)
        #expect(highlights[0]["heading"] == .string("Creating Opportunities"))
        let first = try #require(highlights[0]["numbers"]?.arrayValue)
        #expect(first.count == 3)
        #expect(
            first[0].serialized
                == #"{"indicator":"firms_supported","exact":7950,"rounded":8000,"qualifier":"nearly","text":"nearly 8,000","estimate":false,"submission_count":2}"#
        )
        #expect(first[1]["qualifier"] == .string("more than"))
        #expect(first[1]["rounded"] == .number("90000"))
        #expect(first[2]["qualifier"] == .null)
        #expect(first[2]["text"] == .string("$179 million"))
        let second = try #require(highlights[1]["numbers"]?.arrayValue)
        #expect(
            second[0].serialized
                == #"{"indicator":"cta_companies_committed","exact":47,"rounded":47,"qualifier":"approximately","text":"approximately 47","estimate":true,"submission_count":1}"#
        )
        #expect(second[1]["exact"] == .number("4236000000"))
        #expect(second[1]["rounded"] == .number("4200000000"))
        #expect(second[1]["text"] == .string("more than $4.2 billion"))
        let labor = try #require(highlights[2]["numbers"]?[0])
        #expect(
            labor.serialized
                == #"{"indicator":"labor_officials_trained","exact":1234,"rounded":1200,"qualifier":"over","text":"over 1,200","estimate":false,"countries":["HN"],"reporters":["DOL"],"submission_count":1}"#
        )
        // A highlight without placeholders has no numbers.
        #expect(highlights[10]["heading"] == .string("Combatting Corruption"))
        #expect(highlights[10]["numbers"] == .array([]))
    }

    @Test func eachPlaceholderIsTotalledOnce() throws {
        let template = try FactSheetTemplate.parse(
            """
            # FACT SHEET: Twice

            - **A:** {{jobs_created}} and again {{jobs_created}}, and {{jobs_created country=HN}}.
            """,
            catalogue: catalogue
        )
        var calls: [String] = []
        let sheet = template.render(date: Day(year: 2024, month: 1, day: 1), catalogue: catalogue) { placeholder in
            calls.append(placeholder.source)
            return NumberTotal(exact: placeholder.countries == nil ? 5000 : 700, estimate: false, submissionCount: 0)
        }
        #expect(calls == ["jobs_created", "jobs_created country=HN"])
        #expect(sheet.highlights[0].text == "5,000 and again 5,000, and 700.")
        #expect(template.placeholders.map(\.source) == ["jobs_created", "jobs_created country=HN"])
    }

    @Test func aShareAchievedIsAPercentOfTheReportersTarget() throws {
        let template = try FactSheetTemplate.parse(
            """
            # FACT SHEET: Targets

            - **A:** USAID reached {{jobs_created reporter=USAID country=HN achieved=FY2023}} of its target,
              {{firms_supported reporter=USAID achieved=FY2023}} of another.
            """,
            catalogue: catalogue
        )
        let sheet = template.render(date: Day(year: 2023, month: 6, day: 1), catalogue: catalogue) { placeholder in
            placeholder.indicator == "jobs_created"
                ? NumberTotal(exact: 7342, estimate: false, submissionCount: 3, target: 10000)
                : NumberTotal(exact: 5, estimate: false, submissionCount: 1, target: nil)
        }
        #expect(sheet.highlights[0].text == "USAID reached 73% of its target, no target set of another.")
        let number = try #require(sheet.json["highlights"]?[0]?["numbers"]?[0])
        #expect(number["fiscal_year"] == "FY2023")
        #expect(number["target"] == 10000)
        #expect(number["exact"] == 7342)
        #expect(NumberPhrasing.share(of: 12_850, target: 10_000).text == "129%")
        #expect(NumberPhrasing.share(of: 5, target: 0).text == "no target set")

        for (placeholder, problem) in [
            ("{{jobs_created achieved=FY2023}}", "achieved needs reporter= with one reporter"),
            ("{{jobs_created reporter=USAID,STATE achieved=FY2023}}", "achieved needs reporter= with one reporter"),
            ("{{jobs_created reporter=USAID achieved=2023}}", "achieved takes a fiscal year such as FY2023"),
        ] {
            #expect(throws: FactSheetTemplateError.self) {
                try FactSheetTemplate.parse("# FACT SHEET: T\n\n- **A:** \(placeholder).", catalogue: catalogue)
            }
            do {
                _ = try FactSheetTemplate.parse("# FACT SHEET: T\n\n- **A:** \(placeholder).", catalogue: catalogue)
            } catch let error as FactSheetTemplateError {
                #expect(error.message.contains(problem), "\(error.message)")
            }
        }
    }

    @Test func optionsChangeThePhrase() throws {
        let template = try FactSheetTemplate.parse(
            """
            # FACT SHEET: Options

            **{{ date }}**

            - **Bare:** {{jobs_created bare=true}} jobs.
            - **Words:** {{firms_supported above=well_over below=close_to}} firms,
              {{police_trained precision=100}} police,
              {{smuggling_arrests estimate=roughly}} arrests.

            Closing words for {{date}}.
            """,
            catalogue: catalogue
        )
        #expect(template.highlights.count == 2)
        #expect(template.closing.count == 1)
        let sheet = template.render(date: Day(year: 2025, month: 12, day: 31), catalogue: catalogue) { placeholder in
            switch placeholder.indicator {
            case "jobs_created": return NumberTotal(exact: 90412, estimate: true, submissionCount: 0)
            case "firms_supported": return NumberTotal(exact: 8200, estimate: false, submissionCount: 0)
            case "police_trained": return NumberTotal(exact: 12345, estimate: false, submissionCount: 0)
            default: return NumberTotal(exact: 680, estimate: true, submissionCount: 0)
            }
        }
        #expect(sheet.preamble == ["**December 2025**"])
        #expect(sheet.highlights[0].text == "90,000 jobs.")
        #expect(sheet.highlights[1].text == "well over 8,000 firms, more than 12,300 police, roughly 700 arrests.")
        #expect(sheet.closing == ["Closing words for December 2025."])
        #expect(
            sheet.markdown.hasSuffix(
                "- **Words:** well over 8,000 firms, more than 12,300 police, roughly 700 arrests.\n\nClosing words for December 2025.\n"
            )
        )
    }

    // MARK: Broken templates

    func brokenMessage(_ text: String) -> String? {
        do {
            _ = try FactSheetTemplate.parse(text, catalogue: catalogue)
            return nil
        } catch let error as FactSheetTemplateError {
            return error.message
        } catch {
            return "unexpected error \(error)"
        }
    }

    @Test func unknownIndicator() throws {
        let message = try #require(brokenMessage("# FACT SHEET: T\n\n- **H:** {{no_such_indicator}} things\n"))
        #expect(message.contains("names unknown indicator 'no_such_indicator'"), "\(message)")
        #expect(message.contains("highlight 'H'"), "\(message)")
    }

    @Test func unknownOption() throws {
        let message = try #require(brokenMessage("# FACT SHEET: T\n\n- **H:** {{jobs_created colour=red}} jobs\n"))
        #expect(message.contains("unknown option 'colour'"), "\(message)")
        let notPair = try #require(brokenMessage("# FACT SHEET: T\n\n- **H:** {{jobs_created over}} jobs\n"))
        #expect(notPair.contains("option 'over' must be key=value"), "\(notPair)")
    }

    @Test func unknownCountry() throws {
        let message = try #require(brokenMessage("# FACT SHEET: T\n\n- **H:** {{jobs_created country=GT,XX}} jobs\n"))
        #expect(message.contains("unknown country 'XX'"), "\(message)")
        #expect(!message.contains("'GT'"), "\(message)")
    }

    @Test func unknownReporterAndBadPrecision() throws {
        let message = try #require(
            brokenMessage(
                "# FACT SHEET: T\n\n- **H:** {{jobs_created reporter=NASA}} and {{jobs_created precision=5}}\n"
            )
        )
        #expect(message.contains("unknown reporter 'NASA'"), "\(message)")
        #expect(message.contains("precision must be 1, 10, 100, ..."), "\(message)")
    }

    @Test func missingTitle() throws {
        let message = try #require(brokenMessage("Some lead.\n\n- **H:** {{jobs_created}} jobs\n"))
        #expect(message.contains("the template needs a title line"), "\(message)")
    }

    @Test func otherStructuralProblems() throws {
        let noHighlights = try #require(brokenMessage("# FACT SHEET: T\n\nJust a paragraph.\n"))
        #expect(noHighlights.contains("at least one highlight"), "\(noHighlights)")
        let noHeading = try #require(brokenMessage("# FACT SHEET: T\n\n- plain bullet\n"))
        #expect(noHeading.contains("must start with a bold heading"), "\(noHeading)")
        let unclosed = try #require(brokenMessage("# FACT SHEET: T\n\n- **H:** {{jobs_created jobs\n"))
        #expect(unclosed.contains("'{{' without '}}'"), "\(unclosed)")
    }

    @Test func everyProblemIsListed() throws {
        let message = try #require(
            brokenMessage("- **H:** {{nope}} {{jobs_created country=XX}} {{jobs_created foo=1}}\n")
        )
        #expect(message.components(separatedBy: "; ").count == 4, "\(message)")
    }

    @Test func loadNamesTheFile() throws {
        #expect(throws: FactSheetTemplateError.self) {
            try FactSheetTemplate.load(path: "/nonexistent/factsheet.md", catalogue: catalogue)
        }
    }

    /// The template is edited by communications staff, possibly on Windows: a CRLF copy of the
    /// shipped template should read the same as the original.
    @Test func crlfLineEndingsParseLikeLF() throws {
        let crlf = try shippedText().replacingOccurrences(of: "\n", with: "\r\n")
        let template = try FactSheetTemplate.parse(crlf, catalogue: catalogue)
        #expect(template.highlights.count == 20)
        #expect(
            template.title
                == "FACT SHEET: Update on the U.S. Strategy for Addressing the Root Causes of Migration in Central America"
        )
    }
}
