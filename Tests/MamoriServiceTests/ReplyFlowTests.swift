import Testing

@testable import MamoriServer

/// The connection's flow rules without a channel: the order of replies, the bound on requests in
/// flight, held reads, one flush a burst, and when an idle connection may close.
@Suite("a connection's reply flow")
struct ReplyFlowTests {
    @Test("answers ready at once go straight out only while nothing is ahead of them, flushed once a burst")
    func readyAnswers() {
        var flow = ReplyFlow<Int>(maximumInFlight: 4)
        for line in 1...3 { flow.lineArrived(line) }
        var taken: [Int] = []
        while let line = flow.nextLine(writable: true) {
            taken.append(line)
            let said1 = flow.writeAtOnce()
            #expect(said1, "line \(line): nothing is outstanding, so it is written at once")
        }
        #expect(taken == [1, 2, 3])
        let said2 = flow.takeFlush()
        #expect(said2)
        let said3 = flow.takeFlush()
        #expect(!said3, "one flush for the burst")
        #expect(flow.outstanding == 0 && flow.mayCloseWhenIdle)
    }

    @Test("behind an outstanding reply every answer queues, even one that is ready, so order holds")
    func orderBehindWork() {
        var flow = ReplyFlow<String>(maximumInFlight: 4)
        flow.lineArrived("authenticate")
        flow.lineArrived("malformed")
        let said4 = flow.nextLine(writable: true)
        #expect(said4 == "authenticate")
        flow.queued()  // a task: its reply comes later
        let said5 = flow.nextLine(writable: true)
        #expect(said5 == "malformed")
        let said6 = flow.writeAtOnce()
        #expect(!said6, "a ready reply may not overtake the authenticate still being answered")
        flow.queued()
        #expect(flow.outstanding == 2)
        #expect(!flow.mayCloseWhenIdle, "a caller waiting for its answer is not idle")
        flow.replyWritten()
        flow.replyWritten()
        #expect(flow.outstanding == 0 && flow.mayCloseWhenIdle)
        let said7 = flow.takeFlush()
        #expect(!said7, "queued replies are flushed as they are written")
    }

    @Test("at the bound, lines wait and reads are held until a reply is written")
    func backPressure() {
        var flow = ReplyFlow<Int>(maximumInFlight: 2)
        for line in 1...5 { flow.lineArrived(line) }
        var taken: [Int] = []
        while let line = flow.nextLine(writable: true) {
            taken.append(line)
            flow.queued()
        }
        #expect(taken == [1, 2], "no more than two in flight")
        let said8 = flow.readRequested(writable: true)
        #expect(!said8, "lines wait: reading more would only pile them up")
        let said9 = flow.resumeRead(writable: true)
        #expect(!said9)
        flow.replyWritten()
        let third = flow.nextLine(writable: true)
        #expect(third == 3)
        if let third { taken.append(third) }
        flow.queued()
        let said10 = flow.resumeRead(writable: true)
        #expect(!said10, "still full: 4 and 5 wait")
        flow.replyWritten()
        flow.replyWritten()
        while let line = flow.nextLine(writable: true) {
            taken.append(line)
            flow.queued()
        }
        #expect(taken == [1, 2, 3, 4, 5], "in the order they came")
        let said11 = flow.resumeRead(writable: true)
        #expect(!said11, "two in flight again: still full")
        flow.replyWritten()
        flow.replyWritten()
        let said12 = flow.resumeRead(writable: true)
        #expect(said12, "room again: the held read goes out")
        let said13 = flow.resumeRead(writable: true)
        #expect(!said13, "once")
    }

    @Test("while the peer is not reading its replies, no line is taken up and no read is made")
    func unwritable() {
        var flow = ReplyFlow<Int>(maximumInFlight: 8)
        flow.lineArrived(1)
        let said14 = flow.nextLine(writable: false)
        #expect(said14 == nil)
        let said15 = flow.readRequested(writable: false)
        #expect(!said15)
        #expect(!flow.mayCloseWhenIdle, "a request is waiting")
        let said16 = flow.nextLine(writable: true)
        #expect(said16 == 1)
        let said17 = flow.writeAtOnce()
        #expect(said17)
        let said18 = flow.resumeRead(writable: true)
        #expect(said18)
        let said19 = flow.readRequested(writable: true)
        #expect(said19)
    }
}
