import NIOCore
import NIOSSL
import RootcausesJSON
import RootcausesProtocol

/// A server's TLS: its certificate chain and key (PEM files), and optionally the CA whose
/// client certificates it requires.
public struct TLSServerSettings: Sendable, Hashable {
    public var certificatePath: String
    public var keyPath: String
    /// When set, every client must present a certificate this CA signed.
    public var clientCAPath: String?

    public init(certificatePath: String, keyPath: String, clientCAPath: String? = nil) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAPath = clientCAPath
    }

    /// The context every connection's handshake uses; throws, naming the file, when one cannot be read.
    public func makeContext() throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do { chain = try NIOSSLCertificate.fromPEMFile(certificatePath) } catch {
            throw ClientError("cannot read the TLS certificate \(certificatePath): \(error)")
        }
        do { key = try NIOSSLPrivateKey(file: keyPath, format: .pem) } catch {
            throw ClientError("cannot read the TLS key \(keyPath): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = .tlsv12
        if let clientCAPath {
            // Clients are identified by their certificate, not a hostname.
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .file(clientCAPath)
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// A client's TLS: the CA it trusts for servers (else the system's), and optionally its own
/// certificate and key for servers that require one.
public struct TLSClientSettings: Sendable, Hashable {
    public var caPath: String?
    public var certificatePath: String?
    public var keyPath: String?

    public init(caPath: String? = nil, certificatePath: String? = nil, keyPath: String? = nil) {
        self.caPath = caPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    public func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caPath { configuration.trustRoots = .file(caPath) }
        if let certificatePath, let keyPath {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// First on a TLS port's pipeline: a TLS client's first byte is a handshake record (22); then the
/// TLS handler takes over. Anything else is a client speaking plain lines to a TLS port: it gets
/// one clear answer, in plain text, and the connection is closed. (NIOSSL alone would close the
/// connection with no word the client could read.)
final class TLSRequiredHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let context: NIOSSLContext
    /// What the first byte decided: nothing yet, hand over to TLS, or refuse (drop the rest).
    private enum State { case undecided, tls, refused }
    private var state = State.undecided

    init(context: NIOSSLContext) { self.context = context }

    /// A TLS record of type handshake.
    static let handshakeRecord: UInt8 = 22

    func channelRead(context channelContext: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch state {
        case .tls:
            channelContext.fireChannelRead(data)
            return
        case .refused:
            // Nothing a refused client sends reaches the protocol, however late the close.
            return
        case .undecided:
            break
        }
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        guard first == Self.handshakeRecord else {
            state = .refused
            let refusal = Response.failure(
                id: .null,
                ProtocolError(
                    .tlsRequired,
                    "this port speaks TLS: connect with TLS (rootcauses --tls-ca FILE, or openssl s_client)"
                )
            )
            var answer = channelContext.channel.allocator.buffer(capacity: 256)
            answer.writeString(refusal.serialized + "\n")
            let channel = channelContext.channel
            channelContext.writeAndFlush(wrapOutboundOut(answer)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        state = .tls
        do {
            try channelContext.pipeline.syncOperations.addHandler(
                NIOSSLServerHandler(context: self.context),
                position: .after(self)
            )
        } catch {
            channelContext.fireErrorCaught(error)
            channelContext.close(promise: nil)
            return
        }
        channelContext.fireChannelRead(data)
        channelContext.pipeline.syncOperations.removeHandler(context: channelContext, promise: nil)
    }
}
