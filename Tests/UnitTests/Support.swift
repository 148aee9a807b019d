import Foundation
import RootcausesJSON
import RootcausesModel

/// Paths and shared fixtures for the unit tests.
enum Fixtures {
    /// The package root: this file is `<root>/Tests/UnitTests/Support.swift`.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // UnitTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // root

    static var cataloguePath: String { packageRoot.appendingPathComponent("Deploy/config/catalogue.json").path }
    static var factSheetPath: String { packageRoot.appendingPathComponent("Deploy/config/factsheet.md").path }

    /// The shipped catalogue, loaded once.
    static let catalogue: Catalogue = {
        do { return try Catalogue.load(path: cataloguePath) } catch {
            fatalError("the shipped catalogue does not load: \(error)")
        }
    }()

    static let today = Day(year: 2026, month: 11, day: 29)

    /// Parses JSON text that a test knows to be valid.
    static func json(_ text: String) -> JSON {
        do { return try JSONParser.parse(text) } catch { fatalError("test JSON does not parse: \(error)\n\(text)") }
    }
}

/// Waits (boundedly, five seconds) until `condition` holds; returns whether it did.
@discardableResult
func eventually(_ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
    return condition()
}
