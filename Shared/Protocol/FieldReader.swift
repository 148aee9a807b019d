import RootcausesJSON

/// Collects the problems found while one request is read. Shared by the readers of nested
/// objects, so a request's problems end up in one list, in the order they were found.
public final class ProblemCollector {
    public private(set) var problems: [Problem] = []

    public init() {}

    public func add(_ problem: Problem) { problems.append(problem) }

    public var isEmpty: Bool { problems.isEmpty }
}

/// Reads typed fields out of a JSON object, collecting a `Problem` (path, code, message) for
/// each one that is missing or of the wrong type instead of stopping at the first.
///
/// Optional fields may be absent or `null`; required ones must be present (a `null` in a
/// required field is a wrong type). Numbers are judged on their literal, never through `Double`.
///
/// ```swift
/// let reader = FieldReader(request.body)
/// let minSeq = reader.integer("min_seq", in: 0...Int64.max)
/// let format = reader.oneOf("format", ["markdown", "json"])
/// guard reader.problems.isEmpty else { throw ProtocolError.invalidRequest(reader.problems) }
/// ```
public struct FieldReader {
    /// The object being read (any other JSON value reads as an object without members).
    public let object: JSON
    /// The path of this object, or of the array holding it when `elementIndex` is set.
    private let basePath: String
    /// The object's index in that array.
    private let elementIndex: Int?
    private let collector: ProblemCollector

    public init(_ object: JSON, path: String = "", collector: ProblemCollector = ProblemCollector()) {
        self.init(object, basePath: path, elementIndex: nil, collector: collector)
    }

    private init(_ object: JSON, basePath: String, elementIndex: Int?, collector: ProblemCollector) {
        self.object = object
        self.basePath = basePath
        self.elementIndex = elementIndex
        self.collector = collector
    }

    /// Where this object sits in the request (`""` for the request itself). Made when asked
    /// for, which is when a problem is found: a submission has an element reader per value.
    public var path: String { elementIndex.map { "\(basePath)[\($0)]" } ?? basePath }

    /// Every problem found so far, by this reader and the readers of its nested objects.
    public var problems: [Problem] { collector.problems }

    /// The path of member `key` of this object.
    public func path(of key: String) -> String { Self.path(of: key, in: path) }

    /// The path of member `key` of the object at `path`.
    private static func path(of key: String, in path: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Records a problem found by the caller (a rule beyond the field's type).
    public func report(_ problem: Problem) { collector.add(problem) }

    /// Records a problem with member `key`.
    public func report(_ key: String, code: String, _ message: String) {
        collector.add(Problem(path: path(of: key), code: code, message: message))
    }

    /// The member `key`, or `nil` when it is absent or `null`; reports a missing required member.
    /// `expected` says what a required member must be, for the message when it is `null`.
    public func value(_ key: String, required: Bool = false, expected: String = "given") -> JSON? {
        guard let value = object[key] else {
            if required { collector.add(.missing(path(of: key))) }
            return nil
        }
        if value.isNull {
            if required { collector.add(.wrongType(path(of: key), expected: expected, found: value)) }
            return nil
        }
        return value
    }

    /// A string member.
    public func string(_ key: String, required: Bool = false) -> String? {
        guard let value = value(key, required: required, expected: "a string") else { return nil }
        guard let text = value.stringValue else {
            collector.add(.wrongType(path(of: key), expected: "a string", found: value))
            return nil
        }
        return text
    }

    /// A boolean member.
    public func bool(_ key: String, required: Bool = false) -> Bool? {
        guard let value = value(key, required: required, expected: "true or false") else { return nil }
        guard let flag = value.boolValue else {
            collector.add(.wrongType(path(of: key), expected: "true or false", found: value))
            return nil
        }
        return flag
    }

    /// An integer member, read exactly from its literal (`5`, `5.0` and `5e0` are 5;
    /// `5.0000000000000001` is not an integer), within `range` when given.
    public func integer(_ key: String, in range: ClosedRange<Int64>? = nil, required: Bool = false) -> Int64? {
        guard let value = value(key, required: required, expected: "an integer") else { return nil }
        guard value.numberLiteral != nil else {
            collector.add(.wrongType(path(of: key), expected: "an integer", found: value))
            return nil
        }
        guard let integer = value.int64Value, range?.contains(integer) ?? true else {
            let bounds = range.map { bounds in
                bounds.upperBound == .max
                    ? "of at least \(bounds.lowerBound)" : "from \(bounds.lowerBound) to \(bounds.upperBound)"
            }
            collector.add(.invalid(path(of: key), "'\(key)' must be an integer\(bounds.map { " " + $0 } ?? "")"))
            return nil
        }
        return integer
    }

    /// A number member, as its exact JSON literal.
    public func numberLiteral(_ key: String, required: Bool = false) -> String? {
        guard let value = value(key, required: required, expected: "a number") else { return nil }
        guard let literal = value.numberLiteral else {
            collector.add(.wrongType(path(of: key), expected: "a number", found: value))
            return nil
        }
        return literal
    }

    /// A string member that must be one of `choices`.
    public func oneOf(_ key: String, _ choices: [String], required: Bool = false) -> String? {
        guard let text = string(key, required: required) else { return nil }
        guard choices.contains(text) else {
            let listed = choices.map { "\"\($0)\"" }.joined(separator: ", ")
            collector.add(.invalid(path(of: key), "'\(key)' must be one of \(listed)"))
            return nil
        }
        return text
    }

    /// A string member turned into a value by `parse`; `expected` says what a valid one looks like.
    public func parsed<T>(_ key: String, required: Bool = false, expected: String, _ parse: (String) -> T?) -> T? {
        guard let text = string(key, required: required) else { return nil }
        guard let parsed = parse(text) else {
            collector.add(.invalid(path(of: key), "'\(key)' must be \(expected)"))
            return nil
        }
        return parsed
    }

    /// A member given as one string or a list of strings (filters such as `"country":"GT"`
    /// or `"country":["GT","HN"]`).
    public func stringList(_ key: String, required: Bool = false) -> [String]? {
        guard let value = value(key, required: required, expected: "a string or a list of strings") else { return nil }
        if let one = value.stringValue { return [one] }
        guard let many = value.arrayValue else {
            collector.add(.wrongType(path(of: key), expected: "a string or a list of strings", found: value))
            return nil
        }
        var strings: [String] = []
        for (index, element) in many.enumerated() {
            if let text = element.stringValue {
                strings.append(text)
            } else {
                collector.add(.wrongType("\(path(of: key))[\(index)]", expected: "a string", found: element))
            }
        }
        return strings
    }

    /// An array member, as its elements.
    public func array(_ key: String, required: Bool = false) -> [JSON]? {
        guard let value = value(key, required: required, expected: "an array") else { return nil }
        guard let elements = value.arrayValue else {
            collector.add(.wrongType(path(of: key), expected: "an array", found: value))
            return nil
        }
        return elements
    }

    /// An object member, as a reader that reports into the same problem list.
    public func object(_ key: String, required: Bool = false) -> FieldReader? {
        guard let value = value(key, required: required, expected: "an object") else { return nil }
        guard case .object = value else {
            collector.add(.wrongType(path(of: key), expected: "an object", found: value))
            return nil
        }
        return FieldReader(value, path: path(of: key), collector: collector)
    }

    /// An array of objects, one reader each; an element that is not an object is reported
    /// (`each value must be an object`) and left out.
    public func objects(_ key: String, required: Bool = false, elementName: String = "element") -> [FieldReader]? {
        guard let elements = array(key, required: required) else { return nil }
        var readers: [FieldReader] = []
        readers.reserveCapacity(elements.count)
        let arrayPath = path(of: key)
        for (index, element) in elements.enumerated() {
            guard case .object = element else {
                collector.add(
                    Problem(
                        path: "\(arrayPath)[\(index)]",
                        code: "wrong_type",
                        message: "each \(elementName) must be an object, not \(element.kindName)"
                    )
                )
                continue
            }
            readers.append(FieldReader(element, basePath: arrayPath, elementIndex: index, collector: collector))
        }
        return readers
    }

    /// An object member whose members are all strings (`"disaggregation":{"sex":"female"}`),
    /// in document order.
    public func stringMembers(_ key: String, required: Bool = false) -> [(String, String)]? {
        guard let value = value(key, required: required, expected: "an object") else { return nil }
        guard let members = value.objectValue else {
            collector.add(.wrongType(path(of: key), expected: "an object", found: value))
            return nil
        }
        var strings: [(String, String)] = []
        strings.reserveCapacity(members.count)
        for (name, member) in members {
            if let text = member.stringValue {
                strings.append((name, text))
            } else {
                collector.add(.wrongType(Self.path(of: name, in: path(of: key)), expected: "a string", found: member))
            }
        }
        return strings
    }
}
