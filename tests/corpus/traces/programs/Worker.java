// The same failure as Crash, raised on a named worker thread with another order id.
public class Worker {
    public static void main(String[] args) throws Exception {
        Thread worker = new Thread(() -> Crash.main(new String[] {"B-" + ProcessHandle.current().pid()}), "worker-7");
        worker.start();
        worker.join();
    }
}
